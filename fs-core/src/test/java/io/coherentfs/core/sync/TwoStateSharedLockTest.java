package io.coherentfs.core.sync;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.core.sync.TwoStateSharedLock.Side;
import io.coherentfs.core.sync.TwoStateSharedLock.Snapshot;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Each side shares with itself, the sides exclude each other, and every waiter gets in. */
@Timeout(value = 15, unit = TimeUnit.SECONDS) // a hang guard only; nothing asserts on time
class TwoStateSharedLockTest {

    @Test
    void eachSideSharesWithItself() {
        for (Side side : Side.values()) {
            var lock = new TwoStateSharedLock();
            assertThat(lock.tryLock(side)).isTrue();
            assertThat(lock.tryLock(side)).isTrue();
            lock.lock(side);
            assertThat(lock.holders(side)).isEqualTo(3);
            for (int i = 0; i < 3; i++) {
                lock.unlock(side);
            }
            assertThat(lock.snapshot()).isEqualTo(new Snapshot(0, 0));
            assertThat(lock.contendedWaits(side)).isZero();
        }
    }

    @Test
    void sidesExcludeEachOther() {
        var lock = new TwoStateSharedLock();
        lock.lock(Side.BLOCK);
        assertThat(lock.tryLock(Side.ADD)).isFalse();
        lock.unlock(Side.BLOCK);
        lock.lock(Side.ADD);
        assertThat(lock.tryLock(Side.BLOCK)).isFalse();
        assertThat(lock.snapshot()).isEqualTo(new Snapshot(1, 0));
        lock.unlock(Side.ADD);
        assertThat(lock.tryLock(Side.BLOCK)).isTrue();
    }

    @Test
    void addWaitsUntilTheLastBlockHolderLeaves() throws Exception {
        try (var points = RacePoints.armable()) {
            var lock = new TwoStateSharedLock(points);
            lock.lock(Side.BLOCK);
            lock.lock(Side.BLOCK);
            points.arm(TwoStateSharedLock.RACE_BEFORE_WAIT, () -> {}); // record the arrival only

            var waiter = Threads.start("add-waiter", () -> {
                lock.lock(Side.ADD);
                return lock.snapshot(); // taken while holding ADD
            });
            points.await(TwoStateSharedLock.RACE_BEFORE_WAIT);
            Threads.awaitParked(waiter.thread());
            assertThat(lock.waiting()).isEqualTo(1);

            lock.unlock(Side.BLOCK); // one BLOCK holder left: the waiter must stay out
            assertThat(waiter.result()).isNotDone();
            assertThat(lock.holders(Side.ADD)).isZero();

            lock.unlock(Side.BLOCK); // the last one: wakes the waiter
            assertThat(waiter.result().get()).isEqualTo(new Snapshot(1, 0));
            assertThat(lock.contendedWaits(Side.ADD)).isEqualTo(1);
            assertThat(lock.contendedWaits(Side.BLOCK)).isZero();
            assertThat(lock.waiting()).isZero();
            lock.unlock(Side.ADD);
        }
    }

    @Test
    void blockWaitsForAddHoldersAndAllWaitersOfOneSideWakeTogether() throws Exception {
        var lock = new TwoStateSharedLock();
        lock.lock(Side.ADD);
        var first = Threads.start("block-1", () -> { lock.lock(Side.BLOCK); return true; });
        var second = Threads.start("block-2", () -> { lock.lock(Side.BLOCK); return true; });
        Threads.awaitParked(first.thread());
        Threads.awaitParked(second.thread());
        lock.unlock(Side.ADD);
        assertThat(first.result().get()).isTrue();
        assertThat(second.result().get()).isTrue();
        assertThat(lock.holders(Side.BLOCK)).isEqualTo(2);
    }

    @Test
    void interruptedWaiterHoldsNothing() throws Exception {
        var lock = new TwoStateSharedLock();
        lock.lock(Side.BLOCK);
        var waiter = Threads.start("interruptible", () -> {
            lock.lockInterruptibly(Side.ADD);
            return true;
        });
        Threads.awaitParked(waiter.thread());
        waiter.thread().interrupt();
        assertThatThrownBy(() -> waiter.result().get())
                .isInstanceOf(ExecutionException.class)
                .hasCauseInstanceOf(InterruptedException.class);
        assertThat(lock.snapshot()).isEqualTo(new Snapshot(0, 1));
        assertThat(lock.waiting()).isZero();
    }

    @Test
    void unlockingASideThatIsNotHeldThrows() {
        var lock = new TwoStateSharedLock();
        assertThatThrownBy(() -> lock.unlock(Side.ADD)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> lock.unlock(Side.BLOCK)).isInstanceOf(IllegalStateException.class);
        lock.lock(Side.ADD);
        assertThatThrownBy(() -> lock.unlock(Side.BLOCK))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("ADD x1");
        assertThat(lock.snapshot()).isEqualTo(new Snapshot(1, 0)); // unchanged by the bad unlock
    }

    /**
     * Four threads take random sides (lock or tryLock) 20k times each. A checker outside the lock
     * counts holders per side; at every acquisition the other side's count must be zero. The
     * test ending means every waiter got in.
     */
    @Test
    void randomizedStressNeverHoldsBothSides() throws Exception {
        final int threads = 4;
        final int rounds = 20_000;
        var lock = new TwoStateSharedLock();
        var inside = new AtomicInteger[] {new AtomicInteger(), new AtomicInteger()}; // ADD, BLOCK
        var violations = new AtomicLong();
        var acquisitions = new AtomicLong();
        var start = new CyclicBarrier(threads);

        List<Threads.Started<Void>> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            workers.add(Threads.start("stress-" + t, () -> {
                var rnd = ThreadLocalRandom.current();
                start.await();
                for (int i = 0; i < rounds; i++) {
                    Side side = rnd.nextBoolean() ? Side.ADD : Side.BLOCK;
                    Side other = side == Side.ADD ? Side.BLOCK : Side.ADD;
                    if (rnd.nextInt(4) == 0) {
                        if (!lock.tryLock(side)) {
                            continue;
                        }
                    } else {
                        lock.lock(side);
                    }
                    inside[side.ordinal()].incrementAndGet();
                    if (inside[other.ordinal()].get() != 0 || lock.holders(other) != 0) {
                        violations.incrementAndGet();
                    }
                    acquisitions.incrementAndGet();
                    for (int spin = rnd.nextInt(16); spin > 0; spin--) {
                        Thread.onSpinWait();
                    }
                    inside[side.ordinal()].decrementAndGet();
                    lock.unlock(side);
                }
                return null;
            }));
        }
        for (var w : workers) {
            w.result().get();
        }
        assertThat(violations.get()).isZero();
        assertThat(acquisitions.get()).isPositive();
        assertThat(lock.snapshot()).isEqualTo(new Snapshot(0, 0));
        assertThat(lock.waiting()).isZero();
    }
}
