package io.coherentfs.core.cache;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.core.sync.RacePoints;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;

/** Test helpers: a small pool + cache with synchronous maintenance, threads with results, spin waits. */
final class CacheTestSupport {
    private CacheTestSupport() {}

    static final int PAGE = Folio.PAGE_SIZE;

    /** A cache whose Caffeine maintenance runs on the calling thread (deterministic). */
    static PageCache cache(AlignedBufferPool pool, long budgetBytes) {
        return new PageCache(pool, budgetBytes, Runnable::run, RacePoints.NONE);
    }

    record Started<T>(Thread thread, CompletableFuture<T> result) {}

    static <T> Started<T> start(String name, Callable<T> body) {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().name(name).unstarted(() -> {
            try {
                result.complete(body.call());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        t.start();
        return new Started<>(t, result);
    }

    /** Spins (no sleep) until {@code t} parks; fails if it ends instead. */
    static void awaitParked(Thread t) {
        while (t.getState() != Thread.State.WAITING) {
            if (t.getState() == Thread.State.TERMINATED) {
                throw new AssertionError(t.getName() + " ended instead of waiting");
            }
            Thread.onSpinWait();
        }
    }

    /** Spins until some thread registered as a waiter on {@code f}, then until {@code t} parks. */
    static void awaitWaiting(Folio f, Thread t) {
        while (!f.hasWaiters()) {
            if (t.getState() == Thread.State.TERMINATED) {
                throw new AssertionError(t.getName() + " ended instead of waiting");
            }
            Thread.onSpinWait();
        }
        awaitParked(t);
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
