package io.coherentfs.fuse.kernel;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
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
 *   <li>{@link #writerOpening} (OPEN or CREATE with write access) counts the writer first, so
 *       no later store begins, and then waits for a store in flight to end (the stripe's write
 *       lock) before the open is answered. Every buffered write, mmap store, direct write,
 *       fallocate and copy_file_range needs such a handle, so none can start while a store of
 *       its inode is in flight, and none that started is overtaken by one.</li>
 *   <li>{@link #changingSize} (SETATTR with a size: truncate(2) needs no open handle) runs the
 *       engine's change under the stripe's write lock: a store reads the data either wholly
 *       before (and has been sent, before the kernel truncates its pages after our reply) or
 *       wholly after it.</li>
 *   <li>The store thread checks for writers, reads the engine's data and sends the
 *       notification all under the stripe's read lock.</li>
 * </ul>
 * Invariant: a store's bytes are the engine's bytes of the range from the moment they were
 * read until the kernel has them. {@code unsafe_no_kernel_store_gate} turns the gate off (no
 * writer counting, no waiting), for the race test that shows it is needed.
 *
 * <h2>Threads and locks</h2>
 * {@link #STORE_THREADS} threads ("fuse-store-N") do the stores, from a bounded queue the READ
 * handlers offer to (a full queue drops the hint). The kernel's store waits for page locks, and
 * a page is locked while its READ is in flight: only a worker's answer releases it. A worker
 * never waits for a store here, except {@link #writerOpening} and {@link #changingSize} waiting
 * for the stores in flight on their stripe; those wait only for READs, which the other workers
 * answer.
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
    /** Race points (tests): a writer's open is about to wait for a store in flight. */
    static final String RACE_WRITER_WAITS = "kernel-store.writer-waits";
    /** Race points (tests): the kernel has taken a store. */
    static final String RACE_STORE_SENT = "kernel-store.sent";

    private record Job(long ino, long offset) {}

    private static final Job STOP = new Job(-1, -1);

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
    private final Counter clustersStored;
    private final Counter bytesStored;

    /**
     * @param gated false only for {@code unsafe_no_kernel_store_gate}
     */
    KernelCacheFill(Vfs vfs, FuseChannel channel, MeterRegistry registry, boolean gated, RacePoints race) {
        this.vfs = vfs;
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
    }

    void stop() throws InterruptedException {
        queue.clear();
        for (Thread t : threads) {
            queue.put(STOP);
        }
        for (Thread t : threads) {
            t.join();
        }
    }

    private ReentrantReadWriteLock stripe(long ino) {
        return stripes[(int) (ino ^ (ino >>> 32)) & (STRIPES - 1)];
    }

    /** A READ of {@code length} bytes at {@code offset} of {@code ino} missed the kernel's cache (it reached us). */
    void missed(long ino, long offset, long length) {
        if (length >= SMALL_READ || (gated && writers.containsKey(ino)) || !vfs.readAroundWelcome()) {
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
     * Before a handle of {@code ino} with write access is opened: no store of the inode starts
     * from now on, and the one in flight, if any, has ended when this returns.
     */
    void writerOpening(long ino) {
        if (!gated) {
            return;
        }
        writers.merge(ino, 1, Integer::sum);
        ReentrantReadWriteLock lock = stripe(ino);
        race.hit(RACE_WRITER_WAITS);
        lock.writeLock().lock();
        try {
            synchronized (stored) {
                stored.remove(ino); // after the store in flight remembered its cluster
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** A handle counted by {@link #writerOpening} is released (or its open failed). */
    void writerClosed(long ino) {
        if (gated) {
            writers.computeIfPresent(ino, (k, n) -> n == 1 ? null : n - 1);
        }
    }

    @FunctionalInterface
    interface Change<T> {
        T run() throws IOException;
    }

    /** Runs a change of {@code ino}'s size that needs no open handle, with no store of it in flight. */
    <T> T changingSize(long ino, Change<T> change) throws IOException {
        if (!gated) {
            return change.run();
        }
        ReentrantReadWriteLock lock = stripe(ino);
        lock.writeLock().lock();
        try {
            synchronized (stored) {
                stored.remove(ino);
            }
            return change.run();
        } finally {
            lock.writeLock().unlock();
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
