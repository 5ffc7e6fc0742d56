package io.coherentfs.core.cache;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.sync.Threads;

/** Test helpers: a cache with synchronous maintenance, folio set-up and waits ({@link Threads} starts threads). */
final class CacheTestSupport {
    private CacheTestSupport() {}

    static final int PAGE = Folio.PAGE_SIZE;

    /** A cache whose Caffeine maintenance runs on the calling thread (deterministic). */
    static PageCache cache(AlignedBufferPool pool, long budgetBytes) {
        return new PageCache(pool, budgetBytes, Runnable::run, RacePoints.NONE);
    }

    /** Spins until some thread registered as a waiter on {@code f}, then until {@code t} parks. */
    static void awaitWaiting(Folio f, Thread t) {
        while (!f.hasWaiters()) {
            if (t.getState() == Thread.State.TERMINATED) {
                throw new AssertionError(t.getName() + " ended instead of waiting");
            }
            Thread.onSpinWait();
        }
        Threads.awaitParked(t);
    }

    /** A new folio at {@code index}, filled with {@code fill}, uptodate, unlocked. */
    static Folio cleanFolio(FolioMapping m, long index, byte fill) {
        Folio f = m.getOrCreate(index);
        f.data().fill(fill);
        f.markUptodate();
        f.unlock();
        return f;
    }
}
