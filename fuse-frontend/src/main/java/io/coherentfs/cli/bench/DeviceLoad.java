package io.coherentfs.cli.bench;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.IoCallback;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A closed-loop load on a {@link BlockDevice}, as fio runs one job: {@code queueDepth} requests
 * are kept in flight; each completion (on the engine's completion thread) counts itself and
 * submits the next request until the deadline. Requests completing during the ramp are not
 * counted.
 */
public final class DeviceLoad {

    /** One fio-like job: pattern, block size and queue depth. */
    public record Job(String name, boolean write, boolean random, int blockSize, int queueDepth) {}

    /** What a run achieved in its measured window. */
    public record Result(long ios, long bytes, double seconds) {
        public double iops() {
            return ios / seconds;
        }

        public double mibPerSecond() {
            return bytes / seconds / (1 << 20);
        }
    }

    private DeviceLoad() {}

    public static Result run(BlockDevice device, AlignedBufferPool pool, Job job, long rampNanos, long runNanos)
            throws IOException, InterruptedException {
        long span = device.size() - device.size() % job.blockSize();
        long blocks = span / job.blockSize();
        long start = System.nanoTime();
        long measureFrom = start + rampNanos;
        long deadline = measureFrom + runNanos;
        AtomicLong ios = new AtomicLong();
        AtomicLong nextSequential = new AtomicLong();
        AtomicReference<IOException> failure = new AtomicReference<>();
        CountDownLatch idle = new CountDownLatch(job.queueDepth());
        List<AlignedBuffer> buffers = new ArrayList<>();
        try {
            for (int i = 0; i < job.queueDepth(); i++) {
                AlignedBuffer b = pool.allocate(job.blockSize());
                b.segment().fill((byte) (i + 1));
                buffers.add(b);
            }
            for (AlignedBuffer b : buffers) {
                new IoCallback() {
                    void submit() {
                        long block = job.random()
                                ? ThreadLocalRandom.current().nextLong(blocks)
                                : nextSequential.getAndIncrement() % blocks;
                        long offset = block * job.blockSize();
                        if (job.write()) {
                            device.submitWrite(offset, b.segment(), this);
                        } else {
                            device.submitRead(offset, b.segment(), this);
                        }
                    }

                    @Override
                    public void onComplete(IOException error) {
                        long now = System.nanoTime();
                        if (error != null) {
                            failure.compareAndSet(null, error);
                            idle.countDown();
                            return;
                        }
                        if (now >= measureFrom && now < deadline) {
                            ios.incrementAndGet();
                        }
                        if (now < deadline && failure.get() == null) {
                            submit();
                        } else {
                            idle.countDown();
                        }
                    }
                }.submit();
            }
            idle.await();
        } finally {
            buffers.forEach(AlignedBuffer::close);
        }
        if (failure.get() != null) {
            throw failure.get();
        }
        double seconds = runNanos / 1e9;
        return new Result(ios.get(), ios.get() * (long) job.blockSize(), seconds);
    }
}
