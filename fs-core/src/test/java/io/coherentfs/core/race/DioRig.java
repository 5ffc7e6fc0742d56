package io.coherentfs.core.race;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.dio.HoldingDevice;
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
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The direct-IO race tests' rig (a copy of {@link RaceRig}'s pattern, plus what direct IO needs):
 * a fresh image mounted with armable race points, a chosen coherence configuration and a
 * metrics registry of its own, over a {@link HoldingDevice} (which can keep an AIO's completion
 * back); 4 KiB-aligned native buffers; counters by name; bounded waits that fail with "hang";
 * {@link #reopen} remounts with every mechanism on and no race points.
 */
final class DioRig implements AutoCloseable {
    static final int PAGE = 4096;
    /** A bounded wait, used only to detect a hang. */
    static final long HANG_SECONDS = 20;

    final Path image;
    final CoherenceConfig coherence;
    final RacePoints race = RacePoints.armable();
    final MeterRegistry metrics = new SimpleMeterRegistry();
    final Arena arena = Arena.ofShared();
    HoldingDevice device;
    CoherentFs fs;

    DioRig(String name, CoherenceConfig coherence) throws IOException {
        this.coherence = coherence;
        image = Path.of("target/test-images/dio-race-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 64L << 20);
        device = new HoldingDevice(DirectDevice.open(image));
        CoherentFs.mkfs(device, "dio-race", UUID.randomUUID(), Caller.ROOT);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT.withCoherence(coherence).withMetrics(metrics), race);
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

    /** A counter of the engine's registry, by name. */
    long counter(String name) {
        return (long) metrics.get(name).functionCounter().count();
    }

    /** A 4 KiB-aligned native buffer holding {@code bytes}. */
    MemorySegment buffer(byte[] bytes) {
        MemorySegment s = arena.allocate(Math.max(bytes.length, 1), PAGE);
        MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return s.asSlice(0, bytes.length);
    }

    /** A 4 KiB-aligned zeroed native buffer. */
    MemorySegment buffer(int length) {
        return arena.allocate(length, PAGE);
    }

    /** A buffered read of {@code length} bytes at {@code offset}, through any open file without O_DIRECT. */
    byte[] readBuffered(OpenFile f, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        int n = fs.read(f, offset, MemorySegment.ofArray(out));
        return n == length ? out : java.util.Arrays.copyOf(out, n);
    }

    /** Bytes that are {@code fill} everywhere except a per-position pattern (so shifted copies differ). */
    static byte[] pattern(int tag, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (tag * 31 + (i >>> 9) * 7 + (i >>> 12) * 13 + 1);
        }
        return b;
    }

    static byte[] filled(int value, int length) {
        byte[] b = new byte[length];
        java.util.Arrays.fill(b, (byte) value);
        return b;
    }

    /** Runs {@code body} on a new platform thread named {@code name}. */
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

    /** Set when a wait detected a hang: {@link #close} then does not wait for the stuck engine. */
    volatile boolean hung;

    /** As {@link #await(Future, String)}; a hang also marks this rig so that closing it does not hang too. */
    <T> T guard(Future<T> f, String what) throws Exception {
        try {
            return await(f, what);
        } catch (AssertionError e) {
            if (e.getMessage() != null && e.getMessage().startsWith("hang")) {
                hung = true;
            }
            throw e;
        }
    }

    /** Waits for {@code f}; a timeout is a hang and fails with a message saying so (and the stacks). */
    static <T> T await(Future<T> f, String what) throws Exception {
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

    /** The stacks of the threads that are inside coherentfs code (for a hang's message). */
    static String stacks() {
        StringBuilder sb = new StringBuilder();
        Thread.getAllStackTraces().forEach((t, frames) -> {
            boolean ours = java.util.Arrays.stream(frames).anyMatch(fr -> fr.getClassName().startsWith("io.coherentfs"));
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

    /** Counts the bytes of {@code actual} that differ from {@code expected} (and reports the first). */
    static int differing(byte[] expected, byte[] actual) {
        int n = 0;
        for (int i = 0; i < Math.max(expected.length, actual.length); i++) {
            if (i >= expected.length || i >= actual.length || expected[i] != actual[i]) {
                n++;
            }
        }
        return n;
    }

    /** Unmounts and mounts again with every mechanism on and no race points. */
    void reopen() throws IOException {
        race.close();
        fs.close();
        device.close();
        device = new HoldingDevice(DirectDevice.open(image));
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
    }

    /** Unmounts and runs a read-only fsck of the image; the report. */
    FsckReport unmountAndCheck() throws IOException {
        race.close();
        fs.close();
        fs = null;
        return Fsck.run(device, Fsck.Options.READ_ONLY);
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
