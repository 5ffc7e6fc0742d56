package io.coherentfs.core.cache;

import static io.coherentfs.core.cache.CacheTestSupport.PAGE;
import static io.coherentfs.core.cache.CacheTestSupport.awaitWaiting;
import static io.coherentfs.core.cache.CacheTestSupport.cleanFolio;
import static io.coherentfs.core.sync.Threads.start;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.sync.TwoStateSharedLock.Side;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class FolioMappingTest {
    private final AlignedBufferPool pool = new AlignedBufferPool(1L << 20);
    private final RacePoints racePoints = RacePoints.armable();
    private final PageCache cache = new PageCache(pool, 1024L * PAGE, Runnable::run, racePoints);
    private final FolioMapping mapping = cache.newMapping(42);

    @AfterEach
    void close() {
        racePoints.close();
        pool.close();
    }

    @Test
    void getOrCreateThenGetFindsTheSameFolio() {
        assertThat(mapping.get(5)).isNull();
        assertThat(mapping.lock(5)).isNull();
        Folio f = cleanFolio(mapping, 5, (byte) 9);
        assertThat(mapping.nrpages()).isEqualTo(1);
        assertThat(cache.totalBytes()).isEqualTo(PAGE);
        assertThat(mapping.get(5)).isSameAs(f);
        Folio again = mapping.getOrCreate(5);
        assertThat(again).isSameAs(f);
        assertThat(again.isLocked()).isTrue();
        assertThat(again.isUptodate()).as("existing folio keeps its contents").isTrue();
        assertThat(again.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 100)).isEqualTo((byte) 9);
        again.unlock();
        assertThat(mapping.nrpages()).isEqualTo(1);
        assertThat(pool.outstandingBuffers()).isEqualTo(1);
        assertThatThrownBy(() -> mapping.getOrCreate(-1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void locksAreExposedForLaterUse() {
        mapping.addLock().lock(Side.ADD);
        assertThat(mapping.addLock().tryLock(Side.BLOCK)).isFalse();
        mapping.addLock().unlock(Side.ADD);
        mapping.invalidateLock().writeLock().lock();
        assertThat(mapping.invalidateLock().isWriteLocked()).isTrue();
        mapping.invalidateLock().writeLock().unlock();
    }

    /**
     * Deterministic race: A builds a folio and stops before inserting it; meanwhile B inserts its
     * own for the same index. A must lose, free its buffer, and wait for B's folio lock.
     */
    @Test
    void getOrCreateRaceCreatesOneFolioAndTheLoserWaitsForTheWinnersLock() throws Exception {
        CompletableFuture<Folio> winner = new CompletableFuture<>();
        racePoints.arm(FolioMapping.RACE_BEFORE_INSERT, () -> {
            if (Thread.currentThread().getName().equals("A")) {
                // A stands before its insert: let B create the folio first
                var b = start("B", () -> mapping.getOrCreate(0));
                winner.complete(b.result().join());
            }
        });
        var a = start("A", () -> mapping.getOrCreate(0));
        Folio bFolio = winner.get();
        assertThat(bFolio.isLocked()).isTrue();
        awaitWaiting(bFolio, a.thread()); // A lost the insert and now waits for B's lock
        assertThat(pool.outstandingBuffers()).as("A's spare buffer went back").isEqualTo(1);
        assertThat(mapping.nrpages()).isEqualTo(1);

        bFolio.markUptodate();
        bFolio.unlock(); // B filled it
        Folio aFolio = a.result().get();
        assertThat(aFolio).isSameAs(bFolio);
        assertThat(aFolio.isLocked()).isTrue();
        assertThat(aFolio.isUptodate()).isTrue();
        aFolio.unlock();
        assertThat(racePoints.hits(FolioMapping.RACE_BEFORE_INSERT)).isEqualTo(2);
        assertThat(cache.totalBytes()).isEqualTo(PAGE);
    }

    @Test
    void getOrCreateStressTwoThreadsOneFolioPerIndex() throws Exception {
        int indexes = 1_000; // within the 1024-page budget: nothing is evicted
        CyclicBarrier go = new CyclicBarrier(2);
        Folio[][] got = new Folio[2][indexes];
        List<io.coherentfs.core.sync.Threads.Started<Void>> threads = List.of(0, 1).stream().map(t -> start("creator-" + t, () -> {
            for (int i = 0; i < indexes; i++) {
                go.await();
                Folio f = mapping.getOrCreate(i);
                if (!f.isUptodate()) {
                    f.markUptodate();
                }
                got[t][i] = f;
                f.unlock();
            }
            return (Void) null;
        })).toList();
        for (var t : threads) {
            t.result().get();
        }
        for (int i = 0; i < indexes; i++) {
            assertThat(got[0][i]).isSameAs(got[1][i]).isSameAs(mapping.get(i));
        }
        assertThat(mapping.nrpages()).isEqualTo(indexes);
        assertThat(pool.outstandingBuffers()).isEqualTo(indexes);
        assertThat(cache.totalBytes()).isEqualTo((long) indexes * PAGE);
    }

    @Test
    void seekDataAndSeekHoleOverGaps() {
        // cached: 0-2, 5, 9-10, 100
        for (long i : new long[] {0, 1, 2, 5, 9, 10, 100}) {
            cleanFolio(mapping, i, (byte) 1);
        }
        assertThat(mapping.seekData(0)).isEqualTo(0);
        assertThat(mapping.seekHole(0)).isEqualTo(3);
        assertThat(mapping.seekHole(1)).isEqualTo(3);
        assertThat(mapping.seekData(3)).isEqualTo(5);
        assertThat(mapping.seekHole(5)).isEqualTo(6);
        assertThat(mapping.seekData(6)).isEqualTo(9);
        assertThat(mapping.seekHole(9)).isEqualTo(11);
        assertThat(mapping.seekData(11)).isEqualTo(100);
        assertThat(mapping.seekHole(100)).isEqualTo(101);
        assertThat(mapping.seekData(101)).isEqualTo(-1);
        assertThat(mapping.seekHole(50)).isEqualTo(50);
        assertThat(mapping.seekData(-5)).isEqualTo(0);

        assertThat(cache.newMapping(1).seekData(0)).isEqualTo(-1);
        assertThat(cache.newMapping(1).seekHole(0)).isEqualTo(0);

        assertThat(mapping.remove(1)).isTrue();
        assertThat(mapping.seekHole(0)).isEqualTo(1);
        assertThat(mapping.seekData(1)).isEqualTo(2);
    }

    @Test
    void dirtyRangeListsOnlyDirtyFoliosInOrderWithinBounds() {
        for (long i = 0; i < 20; i++) {
            Folio f = mapping.getOrCreate(i);
            f.markUptodate();
            if (i % 3 == 0) {
                f.markDirty();
            }
            f.unlock();
        }
        assertThat(mapping.dirtyRange(0, 20)).extracting(Folio::index).containsExactly(0L, 3L, 6L, 9L, 12L, 15L, 18L);
        assertThat(mapping.dirtyRange(3, 12)).extracting(Folio::index).containsExactly(3L, 6L, 9L);
        assertThat(mapping.dirtyRange(4, 6)).isEmpty();
        assertThat(mapping.dirtyRange(10, 5)).isEmpty();
        assertThat(cache.dirtyBytes()).isEqualTo(7L * PAGE);
    }

    @Test
    void removeTakesOnlyCleanUnlockedFoliosWithoutWriteback() {
        Folio clean = cleanFolio(mapping, 0, (byte) 0);
        Folio locked = mapping.getOrCreate(1);
        Folio dirty = mapping.getOrCreate(2);
        dirty.markUptodate();
        dirty.markDirty();
        dirty.unlock();
        Folio writeback = mapping.getOrCreate(3);
        writeback.markUptodate();
        writeback.markDirty();
        writeback.startWriteback();
        writeback.unlock();
        assertThat(pool.outstandingBuffers()).isEqualTo(4);

        assertThat(mapping.remove(1)).as("locked").isFalse();
        assertThat(mapping.remove(2)).as("dirty").isFalse();
        assertThat(mapping.remove(3)).as("writeback").isFalse();
        assertThat(mapping.remove(99)).as("absent").isFalse();
        assertThat(mapping.remove(0)).isTrue();
        assertThat(clean.isRemoved()).isTrue();
        assertThat(clean.isLocked()).isFalse();
        assertThatThrownBy(clean::data).isInstanceOf(IllegalStateException.class);
        assertThat(mapping.get(0)).isNull();
        assertThat(mapping.nrpages()).isEqualTo(3);
        assertThat(pool.outstandingBuffers()).isEqualTo(3);

        writeback.endWriteback();
        assertThat(mapping.remove(3)).as("clean after writeback").isTrue();
        locked.unlock();
        assertThat(mapping.remove(1)).as("unlocked, never filled").isTrue();
        assertThat(mapping.nrpages()).isEqualTo(1);
        assertThat(cache.totalBytes()).isEqualTo(PAGE);
        assertThat(pool.outstandingBuffers()).isEqualTo(1);
    }

    /** A thread waiting for the lock of a folio that is being reclaimed finds a new folio instead. */
    @Test
    void lockWaiterOfAReclaimedFolioLooksUpAgain() throws Exception {
        Folio old = cleanFolio(mapping, 0, (byte) 1);
        assertThat(old.claimForReclaim(false)).isTrue(); // what eviction does first: locked + removed
        var waiter = start("waiter", () -> mapping.getOrCreate(0));
        awaitWaiting(old, waiter.thread());
        cache.untrack(old);
        cache.release(old); // detach, free, then wake the waiter
        Folio fresh = waiter.result().get();
        assertThat(fresh).isNotSameAs(old);
        assertThat(fresh.isLocked()).isTrue();
        assertThat(fresh.isUptodate()).isFalse();
        assertThat(old.isRemoved()).isTrue();
        assertThat(old.isLocked()).isFalse();
        assertThat(mapping.get(0)).isSameAs(fresh);
        assertThat(mapping.nrpages()).isEqualTo(1);
        assertThat(pool.outstandingBuffers()).isEqualTo(1);
        fresh.unlock();
    }
}
