package io.coherentfs.core.dio;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import io.coherentfs.core.sync.CoherenceConfig;
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
import java.time.Duration;
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
 * A fresh coherentfs for the direct-IO tests and the race tests: image under target/test-images,
 * through a {@link HoldingDevice} (keeps AIO completions back) and, with power cuts, a
 * {@link FaultyDevice}; armable race points and a metrics registry of its own per mount.
 * {@link #remount} unmounts, checks the image with a read-only fsck (must be clean) and mounts
 * again; {@link #crashAndRecover} pulls the plug and mounts what survived; {@link #reopen} mounts
 * again with every mechanism on and no race points (what a later mount would see).
 */
public final class DioTestRig implements AutoCloseable {
    public static final int PAGE = 4096;
    static final int EINVAL = 22;
    /** A bounded wait, used only to detect a hang. */
    static final long HANG_SECONDS = 20;

    final Path image;
    private final boolean powerCuts;
    /** Without metrics: each mount gets a registry of its own. */
    private final CoherentFs.Options options;
    private final Arena arena = Arena.ofShared();
    FaultyDevice faulty;
    HoldingDevice device;
    public RacePoints race;
    MeterRegistry metrics;
    public CoherentFs fs;
    /** Set when a wait detected a hang: {@link #close} then does not wait for the stuck engine. */
    volatile boolean hung;

    DioTestRig(String name) throws IOException {
        this(name, 128L << 20);
    }

    DioTestRig(String name, long imageBytes) throws IOException {
        this(name, imageBytes, true);
    }

    /** {@code powerCuts}: through a {@link FaultyDevice} (needed by {@link #crashAndRecover}; it costs memory per unflushed write). */
    DioTestRig(String name, long imageBytes, boolean powerCuts) throws IOException {
        this(name, imageBytes, powerCuts, withoutTimers(CoherentFs.Options.DEFAULT));
    }

    /**
     * For a race test: the mechanisms {@code coherence} leaves on, a 64 MiB image, no power cuts,
     * and the journal's commit and checkpoint timers on (the race tests were written and checked so).
     */
    public static DioTestRig forRace(String name, CoherenceConfig coherence) throws IOException {
        return new DioTestRig("race-" + name, 64L << 20, false, CoherentFs.Options.DEFAULT.withCoherence(coherence));
    }

    private DioTestRig(String name, long imageBytes, boolean powerCuts, CoherentFs.Options options) throws IOException {
        this.powerCuts = powerCuts;
        this.options = options;
        image = Path.of("target/test-images/dio-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, imageBytes);
        openDevice();
        CoherentFs.mkfs(device, "dio-" + name, UUID.randomUUID(), Caller.ROOT);
        mount();
    }

    /**
     * No timed commits or checkpoints: tests that fail "the next IO" must get the IO they mean,
     * not a background commit's.
     */
    private static CoherentFs.Options withoutTimers(CoherentFs.Options o) {
        return new CoherentFs.Options(o.readOnly(), o.journal().withCommitInterval(Duration.ofHours(1))
                .withCheckpointInterval(Duration.ofHours(1)), o.atime(), o.cacheBytes(), o.coherence(), o.metrics());
    }

    private void openDevice() throws IOException {
        DirectDevice direct = DirectDevice.open(image);
        faulty = powerCuts ? new FaultyDevice(direct) : null;
        device = new HoldingDevice(powerCuts ? faulty : direct);
    }

    private void mount() throws IOException {
        race = RacePoints.armable();
        metrics = new SimpleMeterRegistry();
        fs = CoherentFs.open(device, options.withMetrics(metrics), race);
    }

    public long create(String name) throws IOException {
        long ino = fs.mknod(Vfs.ROOT, name.getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        fs.forget(ino, 1);
        return ino;
    }

    public OpenFile open(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR);
    }

    public OpenFile openDirect(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR | OpenFile.O_DIRECT);
    }

    /** A counter of this mount's registry, by name. */
    public long counter(String name) {
        return (long) metrics.get(name).functionCounter().count();
    }

    /** A gauge of this mount's registry, by name. */
    public double gauge(String name) {
        return metrics.get(name).gauge().value();
    }

    /** A 4 KiB-aligned native buffer holding {@code bytes}. */
    public MemorySegment buffer(byte[] bytes) {
        MemorySegment s = arena.allocate(Math.max(bytes.length, 1), PAGE);
        MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return s.asSlice(0, bytes.length);
    }

    /** A 4 KiB-aligned zeroed native buffer. */
    public MemorySegment buffer(int length) {
        return arena.allocate(Math.max(length, 1), PAGE).asSlice(0, length);
    }

    static byte[] bytes(MemorySegment s, int n) {
        return Arrays.copyOf(s.toArray(ValueLayout.JAVA_BYTE), n);
    }

    /** A buffered read (short at EOF). */
    public byte[] readBuffered(OpenFile f, long offset, int length) throws IOException {
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

    /** One value per 512-byte sector, from {@code tag} and the sector's place: another tag's data, or a shifted copy, differs. */
    public static byte[] pattern(int tag, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (tag * 31 + (i >>> 9) * 7 + (i >>> 12) * 13 + 1);
        }
        return b;
    }

    /** How many positions of {@code actual} differ from {@code expected}, a length difference counting as differing. */
    public static int differing(byte[] expected, byte[] actual) {
        int n = 0;
        for (int i = 0; i < Math.max(expected.length, actual.length); i++) {
            if (i >= expected.length || i >= actual.length || expected[i] != actual[i]) {
                n++;
            }
        }
        return n;
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

    /** Unmounts, reopens the image and mounts it with every mechanism on, no race points and no registry of ours. */
    public void reopen() throws IOException {
        race.close();
        fs.close();
        fs = null;
        device.close();
        openDevice();
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
    }

    /** Runs {@code body} on a new daemon platform thread named {@code name}. */
    public static <T> CompletableFuture<T> async(String name, Callable<T> body) {
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

    /** As {@link #await}; a hang also marks this rig, so that closing it does not hang too. */
    public <T> T guard(Future<T> f, String what) throws Exception {
        try {
            return await(f, what);
        } catch (AssertionError e) {
            if (e.getCause() instanceof TimeoutException) {
                hung = true;
            }
            throw e;
        }
    }

    /** Waits for {@code f}; a timeout is a hang and fails saying so, with the stacks of the engine's threads. */
    public static <T> T await(Future<T> f, String what) throws Exception {
        try {
            return f.get(HANG_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("hang: " + what + " did not finish within " + HANG_SECONDS + " s\n"
                    + stacks(), e);
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

    /** The stacks of the other threads that are inside coherentfs code. */
    private static String stacks() {
        StringBuilder sb = new StringBuilder();
        Thread.getAllStackTraces().forEach((t, frames) -> {
            boolean ours = Arrays.stream(frames).anyMatch(fr -> fr.getClassName().startsWith("io.coherentfs"));
            if (!ours || t == Thread.currentThread()) {
                return;
            }
            sb.append("  thread ").append(t.getName()).append(" (").append(t.getState()).append(")\n");
            for (StackTraceElement fr : frames) {
                sb.append("      at ").append(fr).append('\n');
            }
        });
        return sb.toString();
    }

    @Override
    public void close() throws IOException {
        race.close();
        device.release();
        if (hung) {
            return; // the engine is stuck: closing it would wait forever; its threads are daemons
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
