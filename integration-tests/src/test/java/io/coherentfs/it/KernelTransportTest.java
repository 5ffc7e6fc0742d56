package io.coherentfs.it;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Transport 2 ({@code -o transport=kernel}: the FUSE protocol on /dev/fuse): every test of
 * {@link MountedFilesystemTest} on a mount made with it (POSIX namespace operations, xattrs,
 * shared mmap, buffered/direct coherence both ways, fio with libaio at iodepth 16 and
 * verify=crc32c, fsck after unmount), plus what only this transport does: renameat2 flags,
 * SEEK_DATA/SEEK_HOLE (FUSE_LSEEK), asynchronous direct writes racing buffered readers that
 * keep pages cached, a large directory, and the life cycle (unmount, fsck, remount; SIGTERM).
 */
@MountWith(image = "posix-kernel", options = "transport=kernel")
class KernelTransportTest extends MountedFilesystemTest {
    @Test
    void theMountSpeaksFuseItself() {
        assertThat(fs.logText()).contains("KernelSession: FUSE_INIT");
    }

    private static Path newDir(String name) throws Exception {
        return Files.createDirectory(root.resolve(name));
    }

    @Test
    void largeDirectoryListsEveryEntryOnceWithStatsInode() throws Exception {
        Path d = newDir("large");
        Set<String> made = new HashSet<>();
        for (int i = 0; i < 3000; i++) {
            String name = "entry-with-a-longish-name-" + i + "-" + "x".repeat(i % 40);
            Files.createFile(d.resolve(name));
            made.add(name);
        }
        Set<String> listed = new HashSet<>();
        int count = 0;
        try (DirectoryStream<Path> s = Files.newDirectoryStream(d)) {
            for (Path p : s) {
                listed.add(p.getFileName().toString());
                count++;
            }
        }
        assertThat(count).isEqualTo(made.size());
        assertThat(listed).isEqualTo(made);
        MountedImage.Outcome r = MountedImage.run(d, "bash", "-c",
                "ls -i | head -200 | while read i n; do [ \"$(stat -c %i \"$n\")\" = \"$i\" ] || echo \"bad $n\"; done");
        assertThat(r.output()).isEmpty();
    }

    @Test
    void renameat2NoReplaceAndExchange() throws Throwable {
        Path d = newDir("rename2");
        Files.writeString(d.resolve("a"), "A");
        Files.writeString(d.resolve("b"), "B");
        assertThat(Libc.renameat2(d.resolve("a"), d.resolve("b"), Libc.RENAME_NOREPLACE)).isEqualTo(Libc.EEXIST);
        assertThat(Files.readString(d.resolve("a"))).isEqualTo("A");
        assertThat(Libc.renameat2(d.resolve("a"), d.resolve("c"), Libc.RENAME_NOREPLACE)).isZero();
        assertThat(Files.exists(d.resolve("a"))).isFalse();
        assertThat(Libc.renameat2(d.resolve("c"), d.resolve("b"), Libc.RENAME_EXCHANGE)).isZero();
        assertThat(Files.readString(d.resolve("c"))).isEqualTo("B");
        assertThat(Files.readString(d.resolve("b"))).isEqualTo("A");
        assertThat(Libc.renameat2(d.resolve("c"), d.resolve("nothing"), Libc.RENAME_EXCHANGE)).isEqualTo(Libc.ENOENT);
    }

    @Test
    void seekDataAndSeekHoleOnASparseFile() throws Throwable {
        Path f = newDir("sparse").resolve("f");
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[4096]).put(0, (byte) 1), 0);
            ch.write(ByteBuffer.wrap(new byte[4096]).put(0, (byte) 2), 1 << 20);
            ch.truncate(2 << 20);
            ch.force(true);
        }
        assertThat(Libc.lseek(f, 0, Libc.SEEK_DATA)).isEqualTo(0);
        assertThat(Libc.lseek(f, 0, Libc.SEEK_HOLE)).isEqualTo(4096);
        assertThat(Libc.lseek(f, 4096, Libc.SEEK_DATA)).isEqualTo(1 << 20);
        assertThat(Libc.lseek(f, 1 << 20, Libc.SEEK_HOLE)).isEqualTo((1 << 20) + 4096);
        assertThat(Libc.lseek(f, (1 << 20) + 4096, Libc.SEEK_DATA)).isEqualTo(-Libc.ENXIO);
        assertThat(Libc.lseek(f, 2 << 20, Libc.SEEK_HOLE)).isEqualTo(-Libc.ENXIO);
    }

    /**
     * fio's async direct writes (libaio, iodepth 16) while a buffered reader keeps re-reading the
     * file into the kernel's page cache (kept across opens: keep_cache): once fio is done, a
     * buffered read must see every byte it wrote. (The direct open itself drops the kernel's cache;
     * what the reader caches during the writes is what could go stale.)
     */
    @Test
    void asyncDirectWritesLeaveNoStalePagesForConcurrentBufferedReaders() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/fio")), "fio is not installed (scripts/install-deps.sh)");
        Path f = newDir("aio").resolve("f");
        int size = 8 << 20;
        Files.write(f, new byte[size]); // zeros, buffered
        try (FileChannel buffered = FileChannel.open(f, StandardOpenOption.READ)) {
            for (int pattern : new int[] {0x5a, 0xa5, 0x3c}) {
                java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
                Thread reader = Thread.ofPlatform().start(() -> {
                    ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                    try {
                        while (!stop.get()) {
                            for (long at = 0; at < size; at += b.capacity()) {
                                buffered.read(b.clear(), at);
                            }
                        }
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                });
                MountedImage.Outcome r;
                try {
                    r = MountedImage.run("fio", "--name=aio", "--filename=" + f, "--rw=randwrite", "--bs=64k",
                            "--size=" + size, "--direct=1", "--ioengine=libaio", "--iodepth=16",
                            "--buffer_pattern=0x" + Integer.toHexString(pattern), "--randrepeat=0", "--norandommap=0");
                } finally {
                    stop.set(true);
                    reader.join();
                }
                assertThat(r.exit()).as(r.output()).isZero();
                ByteBuffer again = ByteBuffer.allocate(size);
                buffered.read(again, 0);
                for (int i = 0; i < size; i++) {
                    if (again.get(i) != (byte) pattern) {
                        throw new AssertionError("stale byte " + again.get(i) + " at " + i + " after async direct writes of 0x"
                                + Integer.toHexString(pattern));
                    }
                }
            }
        }
    }

    @Test
    void unmountFsckRemountKeepsTheData() throws Exception {
        try (MountedImage m = MountedImage.create("kernel-remount", "64m")) {
            m.mount("transport=kernel");
            byte[] data = new byte[3 << 20];
            new Random(5).nextBytes(data);
            Files.write(m.mountpoint.resolve("kept"), data);
            Files.createDirectory(m.mountpoint.resolve("dir"));
            m.unmount();
            Launcher.Outcome fsck = m.fsck();
            assertThat(fsck.exitCode()).as(fsck.stdout() + fsck.stderr()).isZero();
            m.mount("transport=kernel");
            assertThat(Files.readAllBytes(m.mountpoint.resolve("kept"))).isEqualTo(data);
            assertThat(Files.isDirectory(m.mountpoint.resolve("dir"))).isTrue();
            m.unmount();
        }
    }

    @Test
    void sigtermUnmountsAndLeavesTheImageClean() throws Exception {
        try (MountedImage m = MountedImage.create("kernel-sigterm", "64m")) {
            m.mount("transport=kernel");
            Files.writeString(m.mountpoint.resolve("note"), "before SIGTERM");
            long pid = m.daemonPid();
            MountedImage.Outcome k = MountedImage.run("kill", "-TERM", Long.toString(pid));
            assertThat(k.exit()).as(k.output()).isZero();
            m.awaitUnlocked();
            assertThat(m.isMounted()).isFalse();
            var daemon = ProcessHandle.of(pid);
            if (daemon.isPresent()) {
                daemon.get().onExit().get(60, java.util.concurrent.TimeUnit.SECONDS); // it exits after dropping the lock
            }
            Launcher.Outcome fsck = m.fsck();
            assertThat(fsck.exitCode()).as(fsck.stdout() + fsck.stderr() + m.logText()).isZero();
            m.mount("transport=kernel");
            assertThat(Files.readString(m.mountpoint.resolve("note"))).isEqualTo("before SIGTERM");
            m.unmount();
        }
    }

    /** The few C calls Java has no API for: renameat2(2) and lseek(2) with SEEK_DATA/SEEK_HOLE. */
    static final class Libc {
        static final int RENAME_NOREPLACE = 1;
        static final int RENAME_EXCHANGE = 2;
        static final int SEEK_DATA = 3;
        static final int SEEK_HOLE = 4;
        static final int ENOENT = 2;
        static final int ENXIO = 6;
        static final int EEXIST = 17;
        private static final int AT_FDCWD = -100;

        private static final Linker LINKER = Linker.nativeLinker();
        private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
        private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
        private static final MethodHandle RENAMEAT2 = handle("renameat2",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT));
        private static final MethodHandle OPEN = LINKER.downcallHandle(LINKER.defaultLookup().find("open").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), Linker.Option.captureCallState("errno"));
        private static final MethodHandle LSEEK = handle("lseek",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
        private static final MethodHandle CLOSE = handle("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));

        private static MethodHandle handle(String name, FunctionDescriptor fd) {
            return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), fd,
                    Linker.Option.captureCallState("errno"));
        }

        /** 0, or the errno. */
        static int renameat2(Path from, Path to, int flags) throws Throwable {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment c = a.allocate(CAPTURE);
                int rc = (int) RENAMEAT2.invokeExact(c, AT_FDCWD, a.allocateFrom(from.toString()), AT_FDCWD,
                        a.allocateFrom(to.toString()), flags);
                return rc == 0 ? 0 : (int) ERRNO.get(c, 0L);
            }
        }

        /** The offset lseek(2) returns, or minus the errno. */
        static long lseek(Path f, long offset, int whence) throws Throwable {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment c = a.allocate(CAPTURE);
                int fd = (int) OPEN.invokeExact(c, a.allocateFrom(f.toString()), 0);
                assertThat(fd).as("open %s: errno %d", f, (int) ERRNO.get(c, 0L)).isNotNegative();
                try {
                    long r = (long) LSEEK.invokeExact(c, fd, offset, whence);
                    return r >= 0 ? r : -(int) ERRNO.get(c, 0L);
                } finally {
                    int ignored = (int) CLOSE.invokeExact(c, fd);
                }
            }
        }
    }
}
