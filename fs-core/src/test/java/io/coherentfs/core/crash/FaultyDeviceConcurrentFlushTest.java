package io.coherentfs.core.crash;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import org.junit.jupiter.api.Test;

/**
 * Two threads flushing a {@link FaultyDevice} at once, as the journal's commit thread and an
 * fsync do. Each flush takes the list of completed writes, flushes the real device, then marks
 * them durable in {@code flushed()}; when both took the same write, the first {@code flushed()}
 * removes it and drops its sectors' durable copies, and the second dereferences the missing copy:
 * NullPointerException at FaultyDevice.flushed ({@code System.arraycopy(w.data, ..., s, ...)}
 * with {@code s == null}). Found by VfsCrashTest INJECTED_FAULTS (seed 505) through
 * CoherentFs.fsync -> FaultyDevice.flush while the commit thread flushed. Fix (blockdev): in
 * {@code flushed()}, skip writes no longer in {@code pending}.
 */
class FaultyDeviceConcurrentFlushTest {
    @Test
    void concurrentFlushesOfTheSameWritesDoNotFail() throws Exception {
        Path image = Path.of("target/test-images/crash-concurrent-flush.img").toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 4L << 20);
        try (FaultyDevice device = new FaultyDevice(DirectDevice.open(image));
                AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer block = pool.allocate(4096)) {
            List<Throwable> failures = new ArrayList<>();
            for (int round = 0; round < 200 && failures.isEmpty(); round++) {
                block.segment().fill((byte) round);
                device.write((round % 64) * 4096L, block.segment());
                CyclicBarrier start = new CyclicBarrier(2);
                Thread[] flushers = new Thread[2];
                for (int t = 0; t < 2; t++) {
                    flushers[t] = Thread.ofPlatform().start(() -> {
                        try {
                            start.await();
                            device.flush();
                        } catch (Throwable e) {
                            synchronized (failures) {
                                failures.add(e);
                            }
                        }
                    });
                }
                for (Thread t : flushers) {
                    t.join();
                }
            }
            assertThat(failures).isEmpty();
        }
    }
}
