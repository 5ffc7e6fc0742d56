package io.coherentfs.blockdev.engine;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The portable engine: a fixed pool of platform threads doing blocking pread/pwrite,
 * preadv/pwritev and fsync. Each worker runs the completion of the request it served, so the
 * workers are this engine's completion threads. Queue depth = number of workers: that many requests are in the kernel at
 * once; the rest wait in an unbounded queue. A vectored request builds its struct iovec array in
 * its worker's scratch memory ({@link LinuxSyscalls#preadv}), which the blocking call outlives.
 */
public final class ThreadPoolIoEngine implements IoEngine {
    private static final AtomicInteger POOLS = new AtomicInteger();

    private final ThreadPoolExecutor workers;

    public ThreadPoolIoEngine(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("thread-pool engine needs at least one thread, got " + threads);
        }
        int pool = POOLS.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        workers = new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "io-pool-" + pool + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        workers.prestartAllCoreThreads();
    }

    @Override
    public String name() {
        return "thread-pool";
    }

    @Override
    public void submitRead(int fd, long offset, MemorySegment buffer, Completion completion) {
        run(completion, () -> LinuxSyscalls.pread(fd, buffer, offset));
    }

    @Override
    public void submitWrite(int fd, long offset, MemorySegment buffer, Completion completion) {
        run(completion, () -> LinuxSyscalls.pwrite(fd, buffer, offset));
    }

    @Override
    public void submitReadv(int fd, long offset, List<MemorySegment> buffers, Completion completion) {
        run(completion, () -> LinuxSyscalls.preadv(fd, buffers, 0, offset));
    }

    @Override
    public void submitWritev(int fd, long offset, List<MemorySegment> buffers, Completion completion) {
        run(completion, () -> LinuxSyscalls.pwritev(fd, buffers, 0, offset));
    }

    @Override
    public void submitFsync(int fd, boolean dataOnly, Completion completion) {
        run(completion, () -> {
            if (dataOnly) {
                LinuxSyscalls.fdatasync(fd);
            } else {
                LinuxSyscalls.fsync(fd);
            }
            return 0L;
        });
    }

    private interface Call {
        long run() throws ErrnoException;
    }

    private void run(Completion completion, Call call) {
        workers.execute(() -> {
            long result;
            try {
                result = call.run();
            } catch (ErrnoException e) {
                result = -e.errno();
            }
            completion.complete(result);
        });
    }

    @Override
    public void close() {
        workers.shutdown();
        boolean interrupted = false;
        while (true) {
            try {
                if (workers.awaitTermination(1, TimeUnit.MINUTES)) {
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
