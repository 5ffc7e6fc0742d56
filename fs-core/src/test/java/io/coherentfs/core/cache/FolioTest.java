package io.coherentfs.core.cache;

import static io.coherentfs.core.cache.CacheTestSupport.PAGE;
import static io.coherentfs.core.cache.CacheTestSupport.awaitWaiting;
import static io.coherentfs.core.sync.Threads.start;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBufferPool;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class FolioTest {
    private final AlignedBufferPool pool = new AlignedBufferPool(1L << 20);
    private final PageCache cache = CacheTestSupport.cache(pool, 64L * PAGE);
    private final FolioMapping mapping = cache.newMapping(7);

    @AfterEach
    void closePool() {
        pool.close();
    }

    @Test
    void newFolioIsLockedNotUptodateAndPageSized() {
        Folio f = mapping.getOrCreate(3);
        assertThat(f.isLocked()).isTrue();
        assertThat(f.isUptodate()).isFalse();
        assertThat(f.isDirty()).isFalse();
        assertThat(f.isWriteback()).isFalse();
        assertThat(f.index()).isEqualTo(3);
        assertThat(f.position()).isEqualTo(3L * PAGE);
        assertThat(f.mapping()).isSameAs(mapping);
        assertThat(f.data().byteSize()).isEqualTo(PAGE);
        assertThat(f.data().address() % AlignedBufferPool.ALIGNMENT).isZero();
        f.unlock();
    }

    @Test
    void fullLifecycleFillDirtyWritebackClean() {
        Folio f = mapping.getOrCreate(0);
        f.markUptodate();
        assertThat(f.markDirty()).isTrue();
        assertThat(f.markDirty()).as("already dirty").isFalse();
        assertThat(cache.dirtyBytes()).isEqualTo(PAGE);

        f.startWriteback();
        assertThat(f.isDirty()).isFalse();
        assertThat(f.isWriteback()).isTrue();
        assertThat(cache.dirtyBytes()).isZero();
        assertThat(cache.writebackBytes()).isEqualTo(PAGE);
        f.unlock();

        f.endWriteback();
        assertThat(f.isWriteback()).isFalse();
        assertThat(f.isUptodate()).isTrue();
        assertThat(cache.writebackBytes()).isZero();
        assertThat(cache.dirtyBytes()).isZero();
    }

    @Test
    void folioUnderWritebackCanBeRedirtiedAndIsWrittenAgain() {
        Folio f = mapping.getOrCreate(0);
        f.markUptodate();
        f.markDirty();
        f.startWriteback();
        f.unlock();

        f.lock();
        assertThat(f.markDirty()).isTrue();
        assertThat(f.isDirty()).isTrue();
        assertThat(f.isWriteback()).isTrue();
        assertThat(cache.dirtyBytes()).isEqualTo(PAGE);
        assertThat(cache.writebackBytes()).isEqualTo(PAGE);
        assertThatThrownBy(f::startWriteback).as("one writeback at a time").isInstanceOf(IllegalStateException.class);
        f.unlock();

        f.endWriteback();
        assertThat(f.isDirty()).as("the second write keeps it dirty").isTrue();
        f.lock();
        f.startWriteback();
        f.unlock();
        f.endWriteback();
        assertThat(cache.dirtyBytes()).isZero();
        assertThat(cache.writebackBytes()).isZero();
    }

    @Test
    void illegalTransitionsThrowAndChangeNothing() {
        Folio f = mapping.getOrCreate(0);
        assertThatThrownBy(f::markDirty).as("dirty needs uptodate").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::startWriteback).as("writeback needs dirty").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::endWriteback).as("no writeback in flight").isInstanceOf(IllegalStateException.class);
        f.markUptodate();
        f.unlock();

        assertThatThrownBy(f::unlock).as("not locked").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::markDirty).as("dirty needs the lock").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::markUptodate).as("uptodate needs the lock").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::cancelDirty).as("cancel needs the lock").isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f::clearUptodate).as("needs the lock").isInstanceOf(IllegalStateException.class);

        f.lock();
        f.markDirty();
        f.unlock();
        assertThatThrownBy(f::startWriteback).as("writeback needs the lock").isInstanceOf(IllegalStateException.class);
        f.lock();
        assertThatThrownBy(f::clearUptodate).as("dirty implies uptodate").isInstanceOf(IllegalStateException.class);
        f.startWriteback();
        assertThatThrownBy(f::clearUptodate).as("not under writeback").isInstanceOf(IllegalStateException.class);
        f.endWriteback();
        assertThatThrownBy(f::endWriteback).as("ended twice").isInstanceOf(IllegalStateException.class);

        assertThat(f.isLocked()).isTrue();
        assertThat(f.isUptodate()).isTrue();
        assertThat(f.isDirty()).isFalse();
        assertThat(f.isWriteback()).isFalse();
        assertThat(cache.dirtyBytes()).isZero();
        assertThat(cache.writebackBytes()).isZero();
        f.clearUptodate();
        assertThat(f.isUptodate()).isFalse();
        f.unlock();
    }

    @Test
    void cancelDirtyDropsTheDirtyBytes() {
        Folio f = mapping.getOrCreate(0);
        f.markUptodate();
        f.markDirty();
        assertThat(f.cancelDirty()).isTrue();
        assertThat(f.cancelDirty()).isFalse();
        assertThat(cache.dirtyBytes()).isZero();
        f.unlock();
    }

    @Test
    void tryLockFailsWhileLocked() {
        Folio f = mapping.getOrCreate(0);
        assertThat(f.tryLock()).isFalse();
        f.unlock();
        assertThat(f.tryLock()).isTrue();
        assertThat(f.tryLock()).as("not reentrant").isFalse();
        f.unlock();
    }

    @Test
    void lockWaitsUntilTheHolderUnlocks() throws Exception {
        Folio f = mapping.getOrCreate(0); // locked by this thread
        AtomicBoolean acquired = new AtomicBoolean();
        var waiter = start("waiter", () -> {
            f.lock();
            acquired.set(true);
            f.unlock();
            return null;
        });
        awaitWaiting(f, waiter.thread());
        assertThat(acquired).isFalse();
        f.unlock();
        waiter.result().get();
        assertThat(acquired).isTrue();
        assertThat(f.isLocked()).isFalse();
        assertThat(f.hasWaiters()).isFalse();
    }

    @Test
    void interruptibleLockGivesUpWithoutTakingTheLock() throws Exception {
        Folio f = mapping.getOrCreate(0);
        var waiter = start("waiter", () -> {
            try {
                f.lockInterruptibly();
                return "locked";
            } catch (InterruptedException e) {
                return "interrupted";
            }
        });
        awaitWaiting(f, waiter.thread());
        waiter.thread().interrupt();
        assertThat(waiter.result().get()).isEqualTo("interrupted");
        assertThat(f.isLocked()).isTrue();
        f.unlock();
        assertThat(f.tryLock()).isTrue();
        f.unlock();
    }

    @Test
    void lockExcludesBetweenManyThreads() throws Exception {
        Folio f = mapping.getOrCreate(0);
        f.unlock();
        int threads = 4;
        int rounds = 20_000;
        long[] counter = {0};
        boolean[] inside = {false};
        CyclicBarrier go = new CyclicBarrier(threads);
        List<io.coherentfs.core.sync.Threads.Started<Void>> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            all.add(start("locker-" + t, () -> {
                go.await();
                for (int i = 0; i < rounds; i++) {
                    f.lock();
                    try {
                        if (inside[0]) {
                            throw new AssertionError("two holders at once");
                        }
                        inside[0] = true;
                        counter[0]++;
                        inside[0] = false;
                    } finally {
                        f.unlock();
                    }
                }
                return null;
            }));
        }
        for (var s : all) {
            s.result().get();
        }
        assertThat(counter[0]).isEqualTo((long) threads * rounds);
        assertThat(f.isLocked()).isFalse();
    }

    @Test
    void waitForWritebackReturnsAtOnceWithoutWriteback() {
        Folio f = mapping.getOrCreate(0);
        f.waitForWriteback(); // locked or not, no writeback: no wait
        f.unlock();
        f.waitForWriteback();
    }

    @Test
    void waitForWritebackParksUntilTheEnd() throws Exception {
        Folio f = mapping.getOrCreate(0);
        f.markUptodate();
        f.markDirty();
        f.startWriteback();
        f.unlock();
        var waiter = start("wb-waiter", () -> {
            f.waitForWriteback();
            return f.isWriteback();
        });
        var interruptibleWaiter = start("wb-waiter-2", () -> {
            f.waitForWritebackInterruptibly();
            return f.isWriteback();
        });
        awaitWaiting(f, waiter.thread());
        io.coherentfs.core.sync.Threads.awaitParked(interruptibleWaiter.thread());
        // a lock/unlock in between wakes the stripe; the waiters must go back to waiting
        f.lock();
        f.unlock();
        assertThat(waiter.result()).isNotDone();
        f.endWriteback();
        assertThat(waiter.result().get()).isFalse();
        assertThat(interruptibleWaiter.result().get()).isFalse();
    }
}
