package io.coherentfs.fuse.kernel;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.fuse.Mounts;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A real FUSE mount of a fresh image, served by a {@link KernelSession} in the test's own JVM, so
 * that a test can hand it armable {@link RacePoints} and switch its mechanisms off. Needs root
 * (mount(2)) and /dev/fuse; the test is skipped without them.
 */
final class InProcessMount implements AutoCloseable {
    static final int PAGE = 4096;

    final Path mountpoint;
    final CoherentFs fs;
    private final DirectDevice device;
    private final Thread server;

    /**
     * @param files   regular files to create in the root through the engine before mounting,
     *                name → contents (so no writer is open when the mount starts)
     * @param setup   configures the session before it mounts (switches, race points)
     */
    InProcessMount(Path dir, java.util.Map<String, byte[]> files, Consumer<KernelSession> setup) throws Exception {
        assumeTrue(Mounts.isRoot(), "mounting FUSE with mount(2) needs root");
        assumeTrue(Files.isWritable(Path.of("/dev/fuse")), "no /dev/fuse");
        Path image = dir.resolve("in-process.img");
        mountpoint = Files.createDirectory(dir.resolve("mnt"));
        ImageFiles.createSparse(image, 64L << 20);
        device = DirectDevice.open(image);
        CoherentFs.mkfs(device, "in-process", UUID.randomUUID(), Caller.ROOT);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
        for (var f : files.entrySet()) {
            writeThroughTheEngine(f.getKey(), f.getValue());
        }
        KernelSession session = new KernelSession(fs, new SimpleMeterRegistry(),
                KernelMount.of(image.toString(), mountpoint.toString(), "coherentfs-test", false, PAGE, List.of(), 0,
                        0, 0),
                4, true, false);
        setup.accept(session);
        server = Thread.ofPlatform().name("in-process-session").start(() -> {
            try {
                session.run();
            } catch (Exception e) {
                session.mounted().completeExceptionally(e);
            }
        });
        session.mounted().get(60, TimeUnit.SECONDS);
    }

    Path file(String name) {
        return mountpoint.resolve(name);
    }

    private void writeThroughTheEngine(String name, byte[] data) throws IOException {
        long ino = fs.mknod(Vfs.ROOT, name.getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        fs.forget(ino, 1);
        OpenFile f = fs.open(ino, OpenFile.O_RDWR);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(data.length, PAGE);
            MemorySegment.copy(MemorySegment.ofArray(data), 0, src, 0, data.length);
            fs.write(f, 0, src);
            fs.fsync(f, false);
        } finally {
            fs.release(f);
        }
    }

    static byte[] fill(char c, int bytes) {
        byte[] b = new byte[bytes];
        java.util.Arrays.fill(b, (byte) c);
        return b;
    }

    /** Unmounts (lazily, as a signal would), waits for the session to end, closes the engine. */
    @Override
    public void close() throws Exception {
        try {
            Mounts.detach(mountpoint);
            server.join();
        } finally {
            try {
                fs.close();
            } finally {
                device.close();
            }
        }
    }
}
