package io.coherentfs.core.cache;

import static io.coherentfs.core.cache.CacheTestSupport.PAGE;
import static io.coherentfs.core.cache.CacheTestSupport.cleanFolio;
import static io.coherentfs.core.sync.Threads.start;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBufferPool;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 15, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class PageCacheTest {
    private static final long BUDGET_PAGES = 16;

    private final AlignedBufferPool pool = new AlignedBufferPool(1L << 20);
    private final PageCache cache = CacheTestSupport.cache(pool, BUDGET_PAGES * PAGE);

    @AfterEach
    void closePool() {
        pool.close();
    }

    /** Every attached clean folio is tracked, and memory is within budget + pinned. */
    private void assertQuiescentInvariants(List<FolioMapping> mappings, long lockedBytes) {
        cache.cleanUp();
        long pages = mappings.stream().mapToLong(FolioMapping::nrpages).sum();
        assertThat(cache.totalBytes()).isEqualTo(pages * PAGE);
        assertThat(pool.outstandingBuffers()).isEqualTo(pages);
        long pinned = cache.dirtyBytes() + cache.writebackBytes() + lockedBytes;
        assertThat(cache.totalBytes()).isLessThanOrEqualTo(cache.budgetBytes() + pinned);
        assertThat(cache.trackedBytes()).isLessThanOrEqualTo(cache.budgetBytes());
    }

    @Test
    void evictionUnderASmallBudgetKeepsDirtyLockedAndWritebackFolios() {
        FolioMapping a = cache.newMapping(1);
        FolioMapping b = cache.newMapping(2);
        List<Folio> dirty = new ArrayList<>();
        List<Folio> locked = new ArrayList<>();
        List<Folio> writeback = new ArrayList<>();
        for (long i = 0; i < 200; i++) {
            FolioMapping m = i % 2 == 0 ? a : b;
            Folio f = m.getOrCreate(i);
            f.data().set(ValueLayout.JAVA_LONG, 0, i);
            f.markUptodate();
            if (i % 5 == 0) {
                f.markDirty();
                dirty.add(f);
            } else if (i % 13 == 0) {
                f.markDirty();
                f.startWriteback();
                writeback.add(f);
            }
            if (i % 7 == 3) {
                locked.add(f); // never tracked: created locked, stays locked
            } else {
                f.unlock();
            }
            // also lock some folios that are tracked already: Caffeine may pick them, must not drop them
            if (i % 11 == 10) {
                Folio earlier = m.get(i - 2); // tryLock: this thread may hold it already
                if (earlier != null && earlier.tryLock()) {
                    if (earlier.isRemoved()) {
                        earlier.unlock();
                    } else {
                        locked.add(earlier);
                    }
                }
            }
        }
        assertThat(cache.totalBytes()).isLessThan(200L * PAGE);
        assertThat(cache.evictions()).isPositive();
        assertQuiescentInvariants(List.of(a, b), (long) locked.stream().filter(f -> !f.isDirty() && !f.isWriteback()).count() * PAGE);

        for (Folio f : dirty) {
            assertThat(f.isRemoved()).isFalse();
            assertThat(f.mapping().get(f.index())).isSameAs(f);
            assertThat(f.data().get(ValueLayout.JAVA_LONG, 0)).isEqualTo(f.index());
        }
        for (Folio f : locked) {
            assertThat(f.isRemoved()).isFalse();
            assertThat(f.isLocked()).isTrue();
            assertThat(f.mapping().get(f.index())).isSameAs(f);
        }
        for (Folio f : writeback) {
            assertThat(f.isRemoved()).isFalse();
        }
        assertThat(cache.dirtyBytes()).isEqualTo((long) dirty.size() * PAGE);
        assertThat(cache.writebackBytes()).isEqualTo((long) writeback.size() * PAGE);

        // unpin everything: the clean folios return to the policy and the cache shrinks to the budget
        locked.forEach(Folio::unlock);
        writeback.forEach(Folio::endWriteback);
        for (Folio f : dirty) {
            f.lock();
            f.startWriteback();
            f.unlock();
            f.endWriteback();
        }
        assertQuiescentInvariants(List.of(a, b), 0);
        assertThat(cache.dirtyBytes()).isZero();
        assertThat(cache.writebackBytes()).isZero();
        assertThat(cache.trackedBytes()).as("every clean folio is tracked again").isEqualTo(cache.totalBytes());
        assertThat(cache.totalBytes()).isLessThanOrEqualTo(cache.budgetBytes());
    }

    @Test
    void dirtyFoliosAreNotChargedToTheBudget() {
        FolioMapping m = cache.newMapping(1);
        for (long i = 0; i < 3 * BUDGET_PAGES; i++) {
            Folio f = m.getOrCreate(i);
            f.markUptodate();
            f.markDirty();
            f.unlock();
        }
        cache.cleanUp();
        assertThat(m.nrpages()).isEqualTo(3 * BUDGET_PAGES);
        assertThat(cache.dirtyBytes()).isEqualTo(3 * BUDGET_PAGES * PAGE);
        assertThat(cache.trackedBytes()).isZero();
        assertThat(cache.evictions()).isZero();

        // a clean folio dirtied later leaves the policy
        FolioMapping n = cache.newMapping(2);
        Folio f = cleanFolio(n, 0, (byte) 1);
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isEqualTo(PAGE);
        f.lock();
        f.markDirty();
        f.unlock();
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isZero();
        assertThat(cache.dirtyBytes()).isEqualTo((3 * BUDGET_PAGES + 1) * PAGE);
        f.lock();
        f.cancelDirty();
        f.unlock();
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isEqualTo(PAGE);
        assertThat(cache.dirtyBytes()).isEqualTo(3 * BUDGET_PAGES * PAGE);
    }

    @Test
    void dirtyBytesAccounting() {
        FolioMapping m = cache.newMapping(1);
        Folio f = m.getOrCreate(0);
        Folio g = m.getOrCreate(1);
        f.markUptodate();
        g.markUptodate();
        f.markDirty();
        g.markDirty();
        f.markDirty();
        assertThat(cache.dirtyBytes()).isEqualTo(2L * PAGE);
        f.startWriteback();
        assertThat(cache.dirtyBytes()).isEqualTo(PAGE);
        assertThat(cache.writebackBytes()).isEqualTo(PAGE);
        f.markDirty(); // re-dirtied under writeback
        assertThat(cache.dirtyBytes()).isEqualTo(2L * PAGE);
        g.cancelDirty();
        assertThat(cache.dirtyBytes()).isEqualTo(PAGE);
        f.endWriteback();
        assertThat(cache.writebackBytes()).isZero();
        assertThat(cache.dirtyBytes()).isEqualTo(PAGE);
        f.cancelDirty();
        assertThat(cache.dirtyBytes()).isZero();
        f.unlock();
        g.unlock();
        assertThat(cache.totalBytes()).isEqualTo(2L * PAGE);
    }

    @Test
    void evictionReturnsBuffersToThePool() {
        FolioMapping m = cache.newMapping(1);
        for (long i = 0; i < 10 * BUDGET_PAGES; i++) {
            cleanFolio(m, i, (byte) i);
        }
        cache.cleanUp();
        assertThat(cache.evictions()).isGreaterThanOrEqualTo(9 * BUDGET_PAGES);
        assertThat(m.nrpages()).isLessThanOrEqualTo(BUDGET_PAGES);
        assertThat(pool.outstandingBuffers()).isEqualTo(m.nrpages());
        assertThat(cache.totalBytes()).isEqualTo(m.nrpages() * PAGE);
        long reserved = pool.reservedBytes();
        for (long i = 0; i < 10 * BUDGET_PAGES; i++) {
            cleanFolio(m, 1000 + i, (byte) i);
        }
        cache.cleanUp();
        assertThat(pool.reservedBytes()).as("memory is reused, not allocated anew").isEqualTo(reserved);
        assertThat(pool.outstandingBuffers()).isEqualTo(m.nrpages());
    }

    /**
     * The refusal path, step by step: the listener's claim fails on a locked folio and clears its
     * TRACKED bit; the unlock then hands it back to the policy.
     */
    @Test
    void refusedEvictionOfALockedFolioIsRetrackedOnUnlock() {
        FolioMapping m = cache.newMapping(1);
        Folio f = cleanFolio(m, 0, (byte) 1);
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isEqualTo(PAGE);
        f.lock();
        cache.untrack(f); // Caffeine dropped the entry...
        assertThat(f.claimForReclaim(true)).isFalse(); // ...and the listener refused: locked
        assertThat(f.state() & Folio.TRACKED).isZero();
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isZero();
        f.unlock();
        cache.cleanUp();
        assertThat(cache.trackedBytes()).isEqualTo(PAGE);
        assertThat(f.isRemoved()).isFalse();
        assertThat(f.claimForReclaim(true)).as("unlocked and clean: now it can go").isTrue();
    }

    /** Threads lock, dirty, write back and create folios under a tiny budget; nothing pinned is lost. */
    @Test
    void concurrentPressureNeverDropsDirtyData() throws Exception {
        int threads = 4;
        List<FolioMapping> mappings = List.of(cache.newMapping(1), cache.newMapping(2));
        List<io.coherentfs.core.sync.Threads.Started<Void>> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            long seed = 1000 + t;
            all.add(start("pressure-" + t, () -> {
                SplittableRandom rnd = new SplittableRandom(seed);
                for (int op = 0; op < 5_000; op++) {
                    FolioMapping m = mappings.get(rnd.nextInt(2));
                    Folio f = m.getOrCreate(rnd.nextInt(64));
                    if (!f.isUptodate()) {
                        f.markUptodate();
                    }
                    switch (rnd.nextInt(4)) {
                        case 0 -> f.markDirty();
                        case 1 -> {
                            if (f.isDirty()) {
                                f.waitForWriteback();
                                f.startWriteback();
                                f.unlock();
                                f.endWriteback();
                                continue;
                            }
                        }
                        default -> { }
                    }
                    f.unlock();
                }
                return (Void) null;
            }));
        }
        for (var s : all) {
            s.result().get();
        }
        // every dirty folio is still attached
        long dirtyFound = 0;
        for (FolioMapping m : mappings) {
            for (Folio f : m.dirtyRange(0, Long.MAX_VALUE)) {
                assertThat(f.isRemoved()).isFalse();
                dirtyFound++;
            }
        }
        assertThat(cache.dirtyBytes()).isEqualTo(dirtyFound * PAGE);
        assertThat(cache.writebackBytes()).isZero();
        assertQuiescentInvariants(mappings, 0);
        assertThat(cache.trackedBytes()).isEqualTo(cache.totalBytes() - cache.dirtyBytes());
    }
}
