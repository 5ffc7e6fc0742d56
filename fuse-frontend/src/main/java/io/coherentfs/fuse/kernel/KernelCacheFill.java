package io.coherentfs.fuse.kernel;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.fuse.FuseMetrics;
import io.coherentfs.fuse.FuseMetrics.Op;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Kernel read-around: after the kernel misses a small buffered read, the 256 KiB cluster around
 * it is pushed into the kernel's page cache (FUSE_NOTIFY_STORE), so that one FUSE round trip
 * fills 64 pages. A random reader of a file that is not yet in the kernel's cache otherwise pays
 * one round trip per 4 KiB page (fio disables the kernel's own readahead with
 * POSIX_FADV_RANDOM), and the kernel's cache fills 32 times more slowly.
 *
 * <h2>The store gate (coherence)</h2>
 * A store overwrites whatever the kernel holds in the range, and the data was read from the
 * engine some time before. Were the file written in between, the kernel would be left with the
 * old bytes: a buffered write is copied into the kernel's page before its WRITE reaches us, and
 * an mmap store dirties a page we would overwrite. So a store happens only while no handle of
 * the inode is open for writing, and nothing else changes the data meanwhile:
 * <ul>
 *   <li>{@link #writerOpens} (OPEN or CREATE with write access) counts the writer first, so
 *       no later store begins, and then answers the open through {@link #whenNoStore}: only
 *       once no store of the stripe is in flight. Every buffered write, mmap store, direct
 *       write, fallocate and copy_file_range needs such a handle, so none can start while a
 *       store of its inode is in flight, and none that started is overtaken by one.</li>
 *   <li>A SETATTR with a size (truncate(2) needs no open handle) runs the engine's change
 *       through {@link #whenNoStore}, under the stripe's write lock: a store reads the data
 *       either wholly before (and has been sent before the kernel truncates its pages after our
 *       reply) or wholly after it.</li>
 *   <li>A store checks for writers, reads the engine's data and sends the notification all
 *       under the stripe's read lock.</li>
 * </ul>
 * Invariant: a store's bytes are the engine's bytes of the range from the moment they were
 * read until the kernel has them. {@code unsafe_no_kernel_store_gate} turns the gate off (no
 * writer counting, no waiting), for the race test that shows it is needed.
 *
 * <h2>Threads and locks</h2>
 * {@link #STORE_THREADS} threads ("fuse-store-N") do the stores, from a bounded queue the READ
 * handlers offer to (a full queue drops the hint). The kernel's store waits for page locks, and
 * a page is locked while its READ is in flight: only a worker's answer releases it. So no
 * worker ever waits for a store: {@link #whenNoStore} only tries the stripe's write lock, and
 * when a store holds it, hands the request to the gate thread ("fuse-gate"), which waits there
 * and answers it. Were workers to wait, enough writers opening at once could take every worker
 * while a store waited for a READ that only a worker can answer. Waits: gate thread → stores →
 * READs → workers, which wait for neither.
 * Lock order: stripe lock, then the engine's locks (inside Vfs calls), then the kernel's page
 * locks (inside the notification). Nothing here is held while a worker waits for the kernel.
 *
 * <h2>Which clusters</h2>
 * Only READs smaller than 128 KiB (the kernel's readahead asks for larger ones itself), and only
 * while the engine's cache is under half full ({@link Vfs#readAroundWelcome}, the engine's own
 * rule for its read-around): a random reader of a file larger than memory must not turn each 4
 * KiB miss into a 256 KiB device read. A cluster is stored once per inode until the inode's next
 * writer opens (the kernel may evict it; a later miss there is served page by page, as without
 * this). Stores stop at end of file.
 */
final class KernelCacheFill {
    private static final Logger LOG = Logger.getLogger(KernelCacheFill.class.getName());

    /** Bytes per store: 64 pages. 128 KiB (the engine's read-around) filled the kernel's cache about half as fast. */
    static final int CLUSTER = 256 * 1024;
    /** READs this large or larger come from the kernel's own readahead; they trigger no store. */
    static final int SMALL_READ = 128 * 1024;
    private static final int QUEUE = 64;
    /** Stores in parallel: each waits for the engine's device read of its cluster; one alone left the disk idle. */
    static final int STORE_THREADS = 4;
    private static final int STRIPES = 64;
    /** Inodes whose stored clusters are remembered; past this, the memory starts afresh. */
    private static final int TRACKED_INODES = 4096;

    /** Race points (tests): the store thread has read the engine's data and not yet sent it. */
    static final String RACE_STORE_DATA_READ = "kernel-store.data-read";
    /** Race points (tests): a request (a writer's open, a size change) is handed to the gate thread, a store being in flight. */
    static final String RACE_WRITER_WAITS = "kernel-store.writer-waits";
    /** Race points (tests): the kernel has taken a store. */
    static final String RACE_STORE_SENT = "kernel-store.sent";

    private record Job(long ino, long offset) {}

    private static final Job STOP = new Job(-1, -1);

    /** The rest of a request that may run only once no store of its inode's stripe is in flight. */
    @FunctionalInterface
    interface Deferred {
        /** Does the work and answers on {@code reply}; a throw is answered with its errno. */
        void finish(Reply reply) throws IOException;
    }

    /** A deferred request; its worker already counted it in the request timer (up to the hand-over). */
    private record Waiting(Op op, long ino, long unique, Deferred task) {}

    private static final Waiting STOP_GATE = new Waiting(null, -1, 0, null);

    private final Vfs vfs;
    private final FuseChannel channel;
    private final boolean gated;
    private final RacePoints race;
    private final ArrayBlockingQueue<Job> queue = new ArrayBlockingQueue<>(QUEUE);
    private final ReentrantReadWriteLock[] stripes = new ReentrantReadWriteLock[STRIPES];
    /** Handles open for writing, by inode; absent = none. */
    private final ConcurrentHashMap<Long, Integer> writers = new ConcurrentHashMap<>();
    /** Guarded by itself: clusters stored per inode since its last writer opened. */
    private final Map<Long, BitSet> stored = new HashMap<>();
    private final Thread[] threads;
    private final Thread gateThread;
    private final LinkedBlockingQueue<Waiting> waiting = new LinkedBlockingQueue<>();
    private final FuseMetrics metrics;
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final Counter clustersStored;
    private final Counter bytesStored;

    /**
     * @param gated false only for {@code unsafe_no_kernel_store_gate}
     */
    KernelCacheFill(Vfs vfs, FuseChannel channel, MeterRegistry registry, FuseMetrics metrics, boolean gated,
            RacePoints race) {
        this.vfs = vfs;
        this.metrics = metrics;
        this.channel = channel;
        this.gated = gated;
        this.race = race;
        for (int i = 0; i < STRIPES; i++) {
            stripes[i] = new ReentrantReadWriteLock();
        }
        this.threads = new Thread[STORE_THREADS];
        for (int i = 0; i < STORE_THREADS; i++) {
            threads[i] = Thread.ofPlatform().name("fuse-store-" + i).unstarted(this::run);
        }
        this.gateThread = Thread.ofPlatform().name("fuse-gate").unstarted(this::gate);
        this.clustersStored = Counter.builder("coherentfs.fuse.kernel.store.clusters")
                .description("read-around clusters pushed into the kernel's page cache (FUSE_NOTIFY_STORE)")
                .register(registry);
        this.bytesStored = Counter.builder("coherentfs.fuse.kernel.store.bytes").baseUnit("bytes")
                .description("bytes pushed into the kernel's page cache").register(registry);
    }

    void start() {
        for (Thread t : threads) {
            t.start();
        }
        gateThread.start();
    }

    /**
     * Stops the store and gate threads, once: at FUSE_DESTROY, before the engine closes, else
     * after the last worker. Requests still waiting are answered anyway (after the last worker,
     * the kernel refuses them: unmounted). Hints offered later are dropped.
     */
    void stop() throws InterruptedException {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        queue.clear();
        for (Thread t : threads) {
            queue.put(STOP);
        }
        for (Thread t : threads) {
            t.join();
        }
        waiting.put(STOP_GATE);
        gateThread.join();
    }

    private ReentrantReadWriteLock stripe(long ino) {
        return stripes[(int) (ino ^ (ino >>> 32)) & (STRIPES - 1)];
    }

    /** A READ of {@code length} bytes at {@code offset} of {@code ino} missed the kernel's cache (it reached us). */
    void missed(long ino, long offset, long length) {
        if (length >= SMALL_READ || (gated && writers.containsKey(ino)) || stopped.get() || !vfs.readAroundWelcome()) {
            return;
        }
        long cluster = offset / CLUSTER;
        synchronized (stored) {
            BitSet done = stored.get(ino);
            if (done != null && cluster < Integer.MAX_VALUE && done.get((int) cluster)) {
                return;
            }
        }
        queue.offer(new Job(ino, cluster * CLUSTER)); // full: drop the hint
    }

    /**
     * Opens a handle of {@code ino} with write access: counts the writer, so that no store of the
     * inode starts from now on, then runs {@code open} (which opens and answers) through
     * {@link #whenNoStore}, so that a store in flight ends first. {@code open} must call
     * {@link #writerClosed} if the open fails.
     */
    void writerOpens(Op op, long ino, long unique, Reply out, Deferred open) throws IOException {
        if (gated) {
            writers.merge(ino, 1, Integer::sum);
        }
        whenNoStore(op, ino, unique, out, open);
    }

    /** A handle counted by {@link #writerOpens} is released (or its open failed). */
    void writerClosed(long ino) {
        if (gated) {
            writers.computeIfPresent(ino, (k, n) -> n == 1 ? null : n - 1);
        }
    }

    /**
     * Runs {@code task} under the write lock of {@code ino}'s stripe: here, answering on
     * {@code out}, when no store holds the stripe; else on the gate thread once the stores in
     * flight have ended ({@code out} is then marked answered, the gate thread answers). Never
     * waits. Without the gate, or once stopped, runs {@code task} here at once.
     */
    void whenNoStore(Op op, long ino, long unique, Reply out, Deferred task) throws IOException {
        if (!gated || stopped.get()) { // stopped: no store runs any more, nor the gate thread
            task.finish(out);
            return;
        }
        ReentrantReadWriteLock lock = stripe(ino);
        if (lock.writeLock().tryLock()) {
            try {
                forgetStored(ino);
                task.finish(out);
            } finally {
                lock.writeLock().unlock();
            }
            return;
        }
        out.none();
        race.hit(RACE_WRITER_WAITS);
        waiting.add(new Waiting(op, ino, unique, task));
    }

    /** A writer or a size change makes the stored clusters of {@code ino} history. Holds the stripe's write lock. */
    private void forgetStored(long ino) {
        synchronized (stored) {
            stored.remove(ino);
        }
    }

    /** The gate thread: answers deferred requests, each once the stores of its stripe have ended. */
    private void gate() {
        try (Arena arena = Arena.ofConfined()) {
            Reply reply = new Reply(channel, arena);
            while (true) {
                Waiting w;
                try {
                    w = waiting.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
                if (w == STOP_GATE) {
                    return;
                }
                ReentrantReadWriteLock lock = stripe(w.ino());
                lock.writeLock().lock();
                try {
                    forgetStored(w.ino());
                    reply.begin(w.unique());
                    int errno = 0;
                    try {
                        w.task().finish(reply);
                    } catch (IOException | RuntimeException | Error e) {
                        errno = metrics.failed(w.op(), e, LOG);
                    }
                    if (errno != 0 && !reply.sent()) {
                        reply.error(errno);
                    }
                } catch (ErrnoException e) {
                    LOG.log(Level.WARNING, "cannot answer a request the store gate held: " + e.getMessage(), e);
                } finally {
                    lock.writeLock().unlock();
                }
            }
        }
    }

    private void run() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(CLUSTER, 4096);
            MemorySegment scratch = arena.allocate(
                    FuseAbi.OUT_HEADER_BYTES + FuseAbi.NOTIFY_STORE_BYTES + 2 * LinuxSyscalls.IOVEC_BYTES, 8);
            while (true) {
                Job job;
                try {
                    job = queue.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
                if (job == STOP) {
                    return;
                }
                try {
                    store(job, data, scratch);
                } catch (IOException | RuntimeException e) {
                    // the file went away or the connection closed: a hint lost, nothing else
                    LOG.log(Level.FINE, "kernel read-around store of inode " + job.ino() + " skipped: " + e, e);
                }
            }
        }
    }

    private void store(Job job, MemorySegment data, MemorySegment scratch) throws IOException {
        ReentrantReadWriteLock lock = stripe(job.ino());
        lock.readLock().lock();
        try {
            if (gated && writers.containsKey(job.ino())) {
                return;
            }
            int n;
            OpenFile f = vfs.open(job.ino(), OpenFile.O_RDONLY);
            try {
                n = vfs.read(f, job.offset(), data);
            } finally {
                vfs.release(f);
            }
            if (n <= 0) {
                return;
            }
            race.hit(RACE_STORE_DATA_READ);
            if (channel.store(job.ino(), job.offset(), data.asSlice(0, n), scratch)) {
                clustersStored.increment();
                bytesStored.increment(n);
            }
            remember(job);
            race.hit(RACE_STORE_SENT);
        } catch (ErrnoException e) {
            throw new IOException("FUSE_NOTIFY_STORE: " + e.getMessage(), e);
        } finally {
            lock.readLock().unlock();
        }
    }

    private void remember(Job job) {
        long cluster = job.offset() / CLUSTER;
        if (cluster >= Integer.MAX_VALUE) {
            return;
        }
        synchronized (stored) {
            if (stored.size() >= TRACKED_INODES && !stored.containsKey(job.ino())) {
                stored.clear();
            }
            stored.computeIfAbsent(job.ino(), k -> new BitSet()).set((int) cluster);
        }
    }
}
