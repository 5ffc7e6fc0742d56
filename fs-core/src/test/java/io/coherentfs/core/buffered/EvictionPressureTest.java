package io.coherentfs.core.buffered;

import static io.coherentfs.core.buffered.BufRig.PAGE;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.cache.PageCache;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Many threads writing and reading several files through a 1 MiB page cache while the flusher
 * runs (issue 4): nothing is lost, and memory stays within the budget plus a stated slack.
 *
 * <h2>The bound</h2>
 * Clean folios are evicted down to the budget ({@code B} = 1 MiB). Dirty and writeback folios are
 * pinned (outside the budget): writers are throttled once dirty + writeback bytes exceed
 * {@code Writeback.dirtyLimit} = max(B / 4, 64 pages) = 256 KiB, but the check is made before
 * each write step of {@code BufferedIo.WRITE_CHUNK_PAGES} = 256 pages, so each writer may dirty
 * up to 1 MiB past the limit. A reader holds at most one readahead window locked
 * ({@code READAHEAD_MAX_PAGES} = 256 pages = 1 MiB, clean but not evictable while locked), and
 * each thread here is either writing or reading at any moment. Hence
 * <pre>
 *   totalBytes &lt;= B + dirtyLimit + threads * 1 MiB
 * </pre>
 * which is asserted after {@link PageCache#cleanUp()} once the threads are done, and for every
 * sample the test thread takes while they run. After a sync and cleanUp, with everything clean,
 * {@code totalBytes <= B}.
 *
 * <p>Each worker owns disjoint byte regions (unaligned, so neighbours share pages) of two
 * shared files, and a private file it appends to and truncates; it checks every read against its
 * own model of what it owns. After the run, sync and a remount (with fsck), every file is checked
 * whole against the merged models.
 */
@Timeout(90)
class EvictionPressureTest {
    private static final long BUDGET = 1L << 20;
    private static final long DIRTY_LIMIT = Math.max(BUDGET / 4, 64L * PAGE); // Writeback.dirtyLimit
    private static final long CHUNK = 256L * PAGE; // BufferedIo.WRITE_CHUNK_PAGES, READAHEAD_MAX_PAGES
    private static final int THREADS = 4;
    private static final int SHARED_FILES = 2;
    private static final int REGION = (1 << 20) + 1234;
    private static final int SKEW = 777;
    private static final int PRIVATE_MAX = 2 << 20;
    private static final int OPS = Integer.getInteger("coherentfs.buffered.pressureOps", 300);

    private static final long BOUND = BUDGET + DIRTY_LIMIT + THREADS * CHUNK;

    @Test
    void manyThreadsThroughASmallCacheLoseNothingAndStayWithinTheBound() throws Exception {
        long seed = 777;
        try (BufRig rig = new BufRig("pressure", 96L << 20, BUDGET)) {
            long[] shared = new long[SHARED_FILES];
            for (int i = 0; i < SHARED_FILES; i++) {
                shared[i] = rig.create("shared" + i);
                rig.fs.setattr(shared[i], SetAttr.size(SKEW + (long) REGION * THREADS / SHARED_FILES + SKEW));
            }
            Worker[] workers = new Worker[THREADS];
            for (int t = 0; t < THREADS; t++) {
                workers[t] = new Worker(rig, t, seed * 31 + t, shared[t % SHARED_FILES], t / SHARED_FILES,
                        rig.create("private" + t));
            }
            AtomicInteger running = new AtomicInteger(THREADS);
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (Worker w : workers) {
                done.add(CompletableFuture.runAsync(() -> {
                    try {
                        w.run();
                    } catch (IOException e) {
                        throw new RuntimeException(w.where() + ": " + e, e);
                    } finally {
                        running.decrementAndGet();
                    }
                }, r -> Thread.ofPlatform().name("pressure-" + w.id).start(r)));
            }
            PageCache cache = rig.fs.pageCache();
            long max = 0;
            long samples = 0;
            while (running.get() > 0) {
                max = Math.max(max, cache.totalBytes());
                samples++;
                LockSupport.parkNanos(200_000); // sampling rate only; nothing waits on it
            }
            for (CompletableFuture<Void> f : done) {
                f.join();
            }
            String where = "EvictionPressureTest seed " + seed + ": " + cache;
            assertThat(max).as(where + ": largest of " + samples + " samples of totalBytes during the run, bound "
                    + BOUND).isLessThanOrEqualTo(BOUND);
            cache.cleanUp();
            assertThat(cache.totalBytes()).as(where + ": totalBytes after cleanUp").isLessThanOrEqualTo(BOUND);
            rig.fs.sync();
            cache.cleanUp();
            assertThat(cache.dirtyBytes() + cache.writebackBytes()).as(where).isZero();
            assertThat(cache.totalBytes()).as(where + ": totalBytes after sync and cleanUp").isLessThanOrEqualTo(BUDGET);
            assertThat(cache.evictions()).as("the cache was under pressure").isGreaterThan(1000);
            verify(rig, shared, workers, where);
            rig.reopen(where);
            verify(rig, shared, workers, where + ", after remount");
            System.out.printf("EvictionPressureTest: %d threads x %d ops, max totalBytes %d (bound %d), %d evictions%n",
                    THREADS, OPS, max, BOUND, cache.evictions());
        }
    }

    private static void verify(BufRig rig, long[] shared, Worker[] workers, String where) throws IOException {
        for (int i = 0; i < SHARED_FILES; i++) {
            OpenFile f = rig.open(shared[i]);
            byte[] got = BufRig.readAll(rig.fs, f);
            byte[] want = new byte[got.length];
            for (Worker w : workers) {
                if (w.sharedIno == shared[i]) {
                    System.arraycopy(w.region, 0, want, (int) w.regionStart, REGION);
                }
            }
            assertThat(got.length).as(where).isEqualTo(SKEW + (long) REGION * THREADS / SHARED_FILES + SKEW);
            int at = Arrays.mismatch(got, want);
            assertThat(at).as(where + ": shared file " + shared[i] + " differs at byte " + at).isEqualTo(-1);
            rig.fs.release(f);
        }
        for (Worker w : workers) {
            OpenFile f = rig.open(w.privateIno);
            byte[] got = BufRig.readAll(rig.fs, f);
            int at = Arrays.mismatch(got, Arrays.copyOf(w.priv, w.privSize));
            assertThat(at).as(where + ": private file of worker " + w.id + " differs at byte " + at).isEqualTo(-1);
            rig.fs.release(f);
        }
    }

    private static final class Worker {
        final BufRig rig;
        final int id;
        final long seed;
        final Random r;
        final long sharedIno;
        final long regionStart;
        final byte[] region = new byte[REGION];
        final long privateIno;
        final byte[] priv = new byte[PRIVATE_MAX];
        int privSize;
        int op;
        long generation;

        Worker(BufRig rig, int id, long seed, long sharedIno, int slot, long privateIno) {
            this.rig = rig;
            this.id = id;
            this.seed = seed;
            this.r = new Random(seed);
            this.sharedIno = sharedIno;
            this.regionStart = SKEW + (long) slot * REGION;
            this.privateIno = privateIno;
        }

        String where() {
            return "worker " + id + " (seed " + seed + ") op " + op;
        }

        void run() throws IOException {
            OpenFile shared = rig.open(sharedIno);
            OpenFile own = rig.open(privateIno);
            try {
                for (op = 0; op < OPS; op++) {
                    int k = r.nextInt(100);
                    if (k < 30) {
                        int o = r.nextInt(REGION);
                        int n = Math.min(REGION - o, 1 + r.nextInt(r.nextBoolean() ? 3 * PAGE : 400 << 10));
                        byte[] d = BufRig.data(sharedIno, regionStart + o, n, ++generation * THREADS + id);
                        BufRig.writeFully(rig.fs, shared, regionStart + o, d);
                        System.arraycopy(d, 0, region, o, n);
                    } else if (k < 55) {
                        int o = r.nextInt(REGION);
                        int n = Math.min(REGION - o, 1 + r.nextInt(r.nextBoolean() ? 3 * PAGE : 1 << 20));
                        byte[] got = BufRig.read(rig.fs, shared, regionStart + o, n);
                        int at = Arrays.mismatch(got, Arrays.copyOfRange(region, o, o + n));
                        if (at >= 0) {
                            throw new AssertionError(where() + ": shared file " + sharedIno + " read of " + n + " at "
                                    + (regionStart + o) + " differs at byte " + (regionStart + o + at));
                        }
                    } else if (k < 75) {
                        int n = Math.min(PRIVATE_MAX - privSize, 1 + r.nextInt(256 << 10));
                        if (n == 0) {
                            int size = r.nextInt(PRIVATE_MAX / 2);
                            rig.fs.setattr(privateIno, SetAttr.size(size));
                            Arrays.fill(priv, size, privSize, (byte) 0);
                            privSize = size;
                            continue;
                        }
                        byte[] d = BufRig.data(privateIno, privSize, n, ++generation);
                        int got = rig.fs.write(own, privSize, MemorySegment.ofArray(d));
                        if (got != n) {
                            throw new AssertionError(where() + ": short write");
                        }
                        System.arraycopy(d, 0, priv, privSize, n);
                        privSize += n;
                    } else if (k < 95) {
                        int o = privSize == 0 ? 0 : r.nextInt(privSize);
                        int n = 1 + r.nextInt(1 << 20);
                        byte[] got = BufRig.read(rig.fs, own, o, n);
                        int want = Math.max(0, Math.min(n, privSize - o));
                        if (got.length != want || Arrays.mismatch(got, 0, want, priv, o, o + want) >= 0) {
                            throw new AssertionError(where() + ": private file read of " + n + " at " + o
                                    + " differs from the model");
                        }
                    } else {
                        rig.fs.fsync(r.nextBoolean() ? shared : own, false);
                    }
                }
            } finally {
                rig.fs.release(shared);
                rig.fs.release(own);
            }
        }
    }
}
