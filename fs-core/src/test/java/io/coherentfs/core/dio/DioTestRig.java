package io.coherentfs.core.dio;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A fresh coherentfs for the direct-IO tests: image under target/test-images, through a
 * {@link FaultyDevice} (power cuts) and a {@link HoldingDevice} (keeps AIO completions back),
 * armable race points, a metrics registry of its own. {@link #remount} unmounts, checks the image
 * with a read-only fsck (must be clean) and mounts again; {@link #crashAndRecover} pulls the plug
 * and mounts what survived.
 */
final class DioTestRig implements AutoCloseable {
    static final int PAGE = 4096;
    static final int EINVAL = 22, EFAULT = 14;
    static final long HANG_SECONDS = 20;

    final Path image;
    final FaultyDevice faulty;
    final HoldingDevice device;
    final Arena arena = Arena.ofShared();
    RacePoints race = RacePoints.armable();
    MeterRegistry metrics = new SimpleMeterRegistry();
    CoherentFs fs;
    volatile boolean hung;

    DioTestRig(String name) throws IOException {
        this(name, 128L << 20);
    }

    DioTestRig(String name, long imageBytes) throws IOException {
        this(name, imageBytes, true);
    }

    /** {@code powerCuts}: through a {@link FaultyDevice} (needed by {@link #crashAndRecover}; it costs memory per unflushed write). */
    DioTestRig(String name, long imageBytes, boolean powerCuts) throws IOException {
        image = Path.of("target/test-images/dio-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, imageBytes);
        DirectDevice direct = DirectDevice.open(image);
        faulty = powerCuts ? new FaultyDevice(direct) : null;
        device = new HoldingDevice(powerCuts ? faulty : direct);
        CoherentFs.mkfs(device, "dio-" + name, UUID.randomUUID(), Caller.ROOT);
        mount();
    }

    private void mount() throws IOException {
        race = RacePoints.armable();
        metrics = new SimpleMeterRegistry();
        // No timed commits or checkpoints: tests that fail "the next IO" must get the IO they mean,
        // not a background commit's.
        CoherentFs.Options options = CoherentFs.Options.DEFAULT.withMetrics(metrics);
        options = new CoherentFs.Options(false, options.journal().withCommitInterval(java.time.Duration.ofHours(1))
                .withCheckpointInterval(java.time.Duration.ofHours(1)), options.atime(), options.cacheBytes(),
                options.coherence(), metrics);
        fs = CoherentFs.open(device, options, race);
    }

    long create(String name) throws IOException {
        long ino = fs.mknod(Vfs.ROOT, name.getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        fs.forget(ino, 1);
        return ino;
    }

    OpenFile open(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR);
    }

    OpenFile openDirect(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR | OpenFile.O_DIRECT);
    }

    long counter(String name) {
        return (long) metrics.get(name).functionCounter().count();
    }

    MemorySegment buffer(byte[] bytes) {
        MemorySegment s = arena.allocate(Math.max(bytes.length, 1), PAGE);
        MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return s.asSlice(0, bytes.length);
    }

    MemorySegment buffer(int length) {
        return arena.allocate(Math.max(length, 1), PAGE).asSlice(0, length);
    }

    static byte[] bytes(MemorySegment s, int n) {
        return Arrays.copyOf(s.toArray(ValueLayout.JAVA_BYTE), n);
    }

    /** A buffered read (short at EOF). */
    byte[] readBuffered(OpenFile f, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        int n = fs.read(f, offset, MemorySegment.ofArray(out));
        return Arrays.copyOf(out, n);
    }

    /** A direct read into an aligned buffer (short at EOF). */
    byte[] readDirect(OpenFile direct, long offset, int length) throws IOException {
        MemorySegment b = buffer(length);
        int n = fs.read(direct, offset, b);
        return bytes(b, n);
    }

    static byte[] random(java.util.Random r, int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }

    /** Unmounts, runs a read-only fsck (must be clean) and mounts again. */
    void remount(String where) throws IOException {
        fs.close();
        fs = null;
        assertFsckClean(where);
        mount();
    }

    void assertFsckClean(String where) {
        FsckReport report = Fsck.run((BlockDevice) device, Fsck.Options.READ_ONLY);
        if (!report.clean()) {
            throw new AssertionError(where + ": fsck not clean:\n" + report);
        }
    }

    /** Pulls the plug (unflushed writes land, tear or vanish at random), reboots and mounts. */
    void crashAndRecover(long seed) throws IOException {
        device.release();
        faulty.crash(new java.util.Random(seed));
        CoherentFs dead = fs;
        fs = null;
        dead.meta().journal().abort(new IOException("simulated power cut"));
        try {
            dead.close();
        } catch (IOException | RuntimeException e) {
            // a dead instance's close may fail
        }
        faulty.clearFaults();
        faulty.revive();
        assertFsckClean("after the power cut (seed " + seed + ")");
        mount();
    }

    static <T> CompletableFuture<T> async(String name, Callable<T> body) {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name(name).start(() -> {
            try {
                f.complete(body.call());
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    /** Waits for {@code f}; a timeout is a hang: fails saying so and marks the rig (close does not wait). */
    <T> T guard(Future<T> f, String what) throws Exception {
        try {
            return f.get(HANG_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            hung = true;
            throw new AssertionError("hang: " + what + " did not finish within " + HANG_SECONDS + " s", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            while (c instanceof CompletionException && c.getCause() != null) {
                c = c.getCause();
            }
            if (c instanceof Exception ex) {
                throw ex;
            }
            throw new AssertionError(what + " failed", c);
        }
    }

    @Override
    public void close() throws IOException {
        race.close();
        device.release();
        if (hung) {
            return; // the engine is stuck; its threads are daemons
        }
        try {
            if (fs != null) {
                fs.close();
            }
        } finally {
            device.close();
            arena.close();
        }
    }
}
