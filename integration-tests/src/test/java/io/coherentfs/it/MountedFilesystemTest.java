package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.nio.file.ExtendedOpenOption;
import java.nio.ByteBuffer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * POSIX operations, shared mmap, O_DIRECT against buffered IO and fio with verify=crc32c, all on
 * one real mount made by {@code coherentfs mount} on a fresh image. Each test works in its own
 * directory of the mount; at the end the mount is unmounted and fsck must find it clean.
 */
class MountedFilesystemTest {
    static MountedImage fs;
    static Path root;

    @BeforeAll
    static void mount(TestInfo info) throws Exception {
        fs = MountedImage.forTestClass(info.getTestClass().orElseThrow(), "posix", "512m");
        root = fs.mountpoint;
    }

    @AfterAll
    static void unmountAndCheck() throws Exception {
        if (fs != null) {
            fs.unmountAndCheckClean();
        }
    }

    private static Path dir(String name) throws Exception {
        return Files.createDirectory(root.resolve(name));
    }

    @Test
    void posixOperationsFromTheShell() throws Exception {
        Path d = dir("shell");
        String script = """
                set -eu
                echo hello > a
                cat a
                mkdir sub
                mv a sub/b
                test ! -e a
                ln sub/b hard
                stat -c 'links=%h size=%s' sub/b
                ln -s sub/b sym
                readlink sym
                cat sym
                rm hard
                stat -c 'links=%h' sub/b
                chmod 600 sub/b
                stat -c 'mode=%a' sub/b
                truncate -s 10000 sub/b
                stat -c 'size=%s' sub/b
                setfattr -n user.colour -v blue sub/b
                getfattr --only-values -n user.colour sub/b; echo
                setfattr -x user.colour sub/b
                getfattr -n user.colour sub/b 2>/dev/null || echo 'no attribute'
                touch -m -d '2001-02-03 04:05:06' sub/b
                TZ=UTC stat -c 'mtime=%y' sub/b
                rmdir sub 2>/dev/null || echo 'rmdir refused'
                rm -r sub sym
                ls -A | wc -l
                for i in $(seq 1 300); do echo $i > f$i; done
                ls | wc -l
                for e in $(ls -i | awk '{print $1":"$2}'); do
                  ino=${e%%:*}; name=${e#*:}
                  [ "$(stat -c %i "$name")" = "$ino" ] || echo "readdir ino $ino != stat ino of $name"
                done
                cat f1 f150 f300
                rm f*
                df -P . | tail -1 | awk '{print ($2 > 0) ? "df ok" : "df empty"}'
                """;
        MountedImage.Outcome r = MountedImage.run(d, "bash", "-c", script);
        assertThat(r.exit()).as(r.output()).isZero();
        assertThat(r.output()).isEqualTo("""
                hello
                links=2 size=6
                sub/b
                hello
                links=1
                mode=600
                size=10000
                blue
                no attribute
                mtime=2001-02-03 04:05:06.000000000 +0000
                rmdir refused
                0
                300
                1
                150
                300
                df ok
                """);
    }

    @Test
    void posixOperationsFromJava() throws Exception {
        Path d = dir("java");
        byte[] data = new byte[3 << 20];
        new Random(7).nextBytes(data);
        Path f = d.resolve("data.bin");
        Files.write(f, data);
        assertThat(Files.size(f)).isEqualTo(data.length);
        assertThat(Arrays.equals(Files.readAllBytes(f), data)).isTrue();

        Path sub = Files.createDirectories(d.resolve("a/b/c"));
        Path moved = Files.move(f, sub.resolve("moved.bin"));
        assertThat(Files.exists(f)).isFalse();
        assertThat(Arrays.equals(Files.readAllBytes(moved), data)).isTrue();
        Files.move(d.resolve("a/b"), d.resolve("b2")); // rename a directory: its children follow
        assertThat(Arrays.equals(Files.readAllBytes(d.resolve("b2/c/moved.bin")), data)).isTrue();

        Files.writeString(d.resolve("x"), "x");
        Files.writeString(d.resolve("y"), "y");
        Files.move(d.resolve("x"), d.resolve("y"), StandardCopyOption.REPLACE_EXISTING);
        assertThat(Files.readString(d.resolve("y"))).isEqualTo("x");

        Files.setPosixFilePermissions(d.resolve("y"), PosixFilePermissions.fromString("rw-r-----"));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(d.resolve("y")))).isEqualTo("rw-r-----");

        Map<String, Long> inodes = new HashMap<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(d)) {
            for (Path p : s) {
                inodes.put(p.getFileName().toString(), (Long) Files.getAttribute(p, "unix:ino"));
            }
        }
        assertThat(inodes.keySet()).containsExactlyInAnyOrder("a", "b2", "y");

        // An open file that is unlinked stays usable through its descriptor until closed.
        Path gone = d.resolve("gone");
        try (FileChannel ch = FileChannel.open(gone, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap("still here".getBytes(StandardCharsets.UTF_8)), 0);
            Files.delete(gone);
            assertThat(Files.exists(gone)).isFalse();
            ch.write(ByteBuffer.wrap("!".getBytes(StandardCharsets.UTF_8)), 10);
            ByteBuffer back = ByteBuffer.allocate(11);
            ch.read(back, 0);
            assertThat(new String(back.array(), StandardCharsets.UTF_8)).isEqualTo("still here!");
            assertThat(ch.size()).isEqualTo(11);
        }
        try {
            Files.readAllBytes(gone);
            throw new AssertionError("unlinked file still readable by name");
        } catch (NoSuchFileException expected) {
            // ENOENT, as it must be
        }
        try {
            Files.delete(d.resolve("b2"));
            throw new AssertionError("rmdir of a non-empty directory succeeded");
        } catch (java.nio.file.DirectoryNotEmptyException expected) {
            // ENOTEMPTY
        }
    }

    @Test
    void sharedMmapRoundTrip() throws Exception {
        Path f = dir("mmap").resolve("mapped");
        int size = 1 << 20;
        byte[] pattern = new byte[size];
        new Random(11).nextBytes(pattern);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE); Arena arena = Arena.ofConfined()) {
            ch.truncate(size);
            MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            m.copyFrom(MemorySegment.ofArray(pattern));
            m.force();
        } // munmap here: a mapping left for the GC would keep the mount busy
        assertThat(Arrays.equals(Files.readAllBytes(f), pattern)).as("buffered read of what mmap wrote").isTrue();
        assertThat(Arrays.equals(readDirect(f, size), pattern)).as("O_DIRECT read of what mmap wrote").isTrue();

        // and the reverse: a write through the file shows in an existing shared mapping
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE);
                Arena arena = Arena.ofConfined()) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            ch.write(ByteBuffer.wrap("written".getBytes(StandardCharsets.UTF_8)), 4096);
            byte[] seen = m.asSlice(4096, 7).toArray(ValueLayout.JAVA_BYTE);
            assertThat(new String(seen, StandardCharsets.UTF_8)).isEqualTo("written");
        }
    }

    @Test
    void directWritesReadBackBufferedAndTheReverse() throws Exception {
        Path f = dir("direct").resolve("f");
        int size = 1 << 20;
        byte[] first = new byte[size];
        new Random(1).nextBytes(first);
        Files.write(f, first); // buffered
        try (FileChannel buffered = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer cached = ByteBuffer.allocate(size);
            buffered.read(cached, 0); // the kernel now caches the old content
            assertThat(Arrays.equals(readDirect(f, size), first)).as("O_DIRECT reads what buffered wrote").isTrue();

            byte[] second = new byte[size];
            new Random(2).nextBytes(second);
            writeDirect(f, second);
            ByteBuffer again = ByteBuffer.allocate(size);
            buffered.read(again, 0);
            assertThat(Arrays.equals(again.array(), second))
                    .as("a buffered descriptor opened before the O_DIRECT write sees it").isTrue();
            assertThat(Arrays.equals(Files.readAllBytes(f), second)).as("a new buffered open sees it").isTrue();
        }
    }

    static byte[] readDirect(Path f, int size) throws Exception {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, ExtendedOpenOption.DIRECT)) {
            ByteBuffer b = ByteBuffer.allocateDirect(size + 4096).alignedSlice(4096);
            b.limit(size);
            while (b.hasRemaining() && ch.read(b, b.position()) > 0) {
                // continue
            }
            byte[] out = new byte[size];
            b.flip().get(out);
            return out;
        }
    }

    static void writeDirect(Path f, byte[] data) throws Exception {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT)) {
            ByteBuffer b = ByteBuffer.allocateDirect(data.length + 4096).alignedSlice(4096);
            b.put(data).flip();
            while (b.hasRemaining()) {
                ch.write(b, b.position());
            }
        }
    }

    private static MountedImage.Outcome fio(Path dir, String... args) throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/fio")), "fio is not installed (scripts/install-deps.sh)");
        String[] cmd = new String[args.length + 6];
        cmd[0] = "fio";
        cmd[1] = "--directory=" + dir;
        cmd[2] = "--ioengine=libaio";
        cmd[3] = "--iodepth=16";
        cmd[4] = "--verify_fatal=1";
        cmd[5] = "--verify_state_save=0";
        System.arraycopy(args, 0, cmd, 6, args.length);
        return MountedImage.run(cmd);
    }

    private static void assertVerified(MountedImage.Outcome r) {
        assertThat(r.exit()).as(r.output()).isZero();
        assertThat(r.output()).doesNotContain("verify:").doesNotContain("bad magic").contains("err= 0");
    }

    @Test
    void fioBufferedVerify() throws Exception {
        assertVerified(fio(dir("fio-buffered"), "--name=buffered", "--filename=f", "--rw=randwrite", "--bs=4k",
                "--size=32m", "--direct=0", "--verify=crc32c", "--do_verify=1"));
    }

    @Test
    void fioDirectVerify() throws Exception {
        assertVerified(fio(dir("fio-direct"), "--name=direct", "--filename=f", "--rw=randwrite", "--bs=4k",
                "--size=32m", "--direct=1", "--verify=crc32c", "--do_verify=1"));
    }

    @Test
    void fioBufferedAndDirectAtOnceOnOneFile() throws Exception {
        // Two jobs at the same time on one file, each verifying its own half (fio's verify needs
        // regions nobody else writes): buffered 4 KiB writes and O_DIRECT 64 KiB writes.
        assertVerified(fio(dir("fio-mixed"), "--filename=shared", "--verify=crc32c", "--do_verify=1",
                "--rw=randwrite",
                "--name=buffered", "--direct=0", "--bs=4k", "--offset=0", "--size=16m",
                "--name=direct", "--direct=1", "--bs=64k", "--offset=16m", "--size=16m"));
    }
}
