package io.coherentfs.core.sync;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A lock with two shared sides that exclude each other: bcachefs's {@code pagecache_add_lock}
 * (mechanism M3, DESIGN.md section 3; lock tier 3 in section 4).
 *
 * <p>The {@link Side#ADD ADD} side is taken by everything that adds pages to a mapping's page
 * cache (buffered read fill, readahead, write_begin, page_mkwrite, faults); the
 * {@link Side#BLOCK BLOCK} side by everything that must keep pages from being added while it
 * runs (direct writes, truncate, fallocate/punch). Any number of holders of one side share the
 * lock; the two sides never hold it at the same time.
 *
 * <h2>Concurrency design</h2>
 * <ul>
 *   <li><b>State</b>: one signed counter {@link #state}. Negative: that many ADD holders;
 *       positive: that many BLOCK holders; zero: free. Every acquisition and release is a CAS
 *       that moves the counter by one, so the counter is never both negative and positive: this
 *       is the whole exclusion invariant.
 *   <li><b>Fast path</b>: {@link #tryLock} is a CAS loop that fails as soon as the counter has
 *       the other side's sign. No monitor is touched.
 *   <li><b>Slow path</b>: {@link #lock} registers itself in {@link #waiters} and re-tries, then
 *       awaits {@link #drained}, all under {@link #monitor}. A waiter for one side can only
 *       succeed after the counter has passed through zero (it moves by one), so only the
 *       release that brings the counter to zero wakes waiters, and it wakes all of them (both
 *       sides may be waiting; whoever CASes first wins, the others wait again).
 *   <li><b>No lost wake-up</b>: a waiter increments {@code waiters} <em>before</em> its
 *       re-try reads the counter; a releaser sets the counter to zero <em>before</em> it reads
 *       {@code waiters}. Both are volatile (sequentially consistent) accesses, so either the
 *       releaser sees the waiter and signals, or the waiter's re-try sees the zero and
 *       succeeds. The signal is sent while holding {@code monitor}, and the waiter holds
 *       {@code monitor} from its re-try until {@code await} releases it, so a signal cannot
 *       fall between the waiter's failed re-try and its await.
 *   <li><b>No fairness, no queue order</b>: a steady stream of one side can starve the other,
 *       as in bcachefs. Starvation is made visible, not prevented: {@link #contendedWaits}
 *       counts the acquisitions that had to leave the fast path, per side.
 *   <li><b>No owner tracking</b>: the lock knows how many hold each side, not who. Releasing a
 *       side that nobody holds throws {@link IllegalStateException}; releasing a side that
 *       another thread holds cannot be detected.
 * </ul>
 *
 * <p>Race point {@link #RACE_BEFORE_WAIT} is hit by a thread that missed the fast path, before
 * it takes the monitor, so tests can hold a waiter there or learn that it is about to wait.
 */
public final class TwoStateSharedLock {
    /** The two sides. Each shares with itself and excludes the other. */
    public enum Side {
        /** Adding pages to the page cache (counter goes negative). */
        ADD,
        /** Keeping pages from being added (counter goes positive). */
        BLOCK;

        int delta() {
            return this == BLOCK ? +1 : -1;
        }
    }

    /** A consistent view of the counter, for tests and metrics. */
    public record Snapshot(long addHolders, long blockHolders) {}

    /** Hit by a thread that missed the fast path and is about to wait. */
    public static final String RACE_BEFORE_WAIT = "two-state-lock.before-wait";

    /** Negative: ADD holders; positive: BLOCK holders; zero: free. Moved only by one, by CAS. */
    private final AtomicLong state = new AtomicLong();
    /** Threads inside the slow path; written under {@link #monitor}, read by releasers. */
    private final AtomicInteger waiters = new AtomicInteger();
    /** Guards the wait; never held while the counter is held by the waiting thread. */
    private final ReentrantLock monitor = new ReentrantLock();
    /** Signalled (under {@link #monitor}) whenever the counter returns to zero with waiters. */
    private final Condition drained = monitor.newCondition();
    private final LongAdder contendedAdd = new LongAdder();
    private final LongAdder contendedBlock = new LongAdder();
    private final RacePoints racePoints;

    public TwoStateSharedLock() {
        this(RacePoints.NONE);
    }

    public TwoStateSharedLock(RacePoints racePoints) {
        this.racePoints = Objects.requireNonNull(racePoints, "racePoints");
    }

    /** Takes {@code side} if the other side is not held; never waits. */
    public boolean tryLock(Side side) {
        long d = side.delta();
        while (true) {
            long old = state.get();
            if (d > 0 ? old < 0 : old > 0) {
                return false;
            }
            if (state.compareAndSet(old, old + d)) {
                return true;
            }
        }
    }

    /** Takes {@code side}, waiting (uninterruptibly) while the other side is held. */
    public void lock(Side side) {
        if (tryLock(side)) {
            return;
        }
        slowLock(side, false);
    }

    /**
     * Takes {@code side}, waiting while the other side is held.
     *
     * @throws InterruptedException if interrupted while waiting; the lock is then not held
     */
    public void lockInterruptibly(Side side) throws InterruptedException {
        if (Thread.interrupted()) {
            throw new InterruptedException();
        }
        if (tryLock(side)) {
            return;
        }
        if (!slowLock(side, true)) {
            throw new InterruptedException();
        }
    }

    /** Returns false only when interruptible and interrupted (then nothing is held). */
    private boolean slowLock(Side side, boolean interruptible) {
        (side == Side.ADD ? contendedAdd : contendedBlock).increment();
        racePoints.hit(RACE_BEFORE_WAIT);
        boolean interrupted = false;
        monitor.lock();
        try {
            waiters.incrementAndGet(); // before the re-try reads the counter: see class header
            try {
                while (!tryLock(side)) {
                    if (interruptible) {
                        try {
                            drained.await();
                        } catch (InterruptedException e) {
                            return false;
                        }
                    } else {
                        drained.awaitUninterruptibly();
                    }
                }
                return true;
            } finally {
                waiters.decrementAndGet();
            }
        } finally {
            monitor.unlock();
        }
    }

    /**
     * Releases one hold of {@code side}; the release that frees the lock wakes all waiters.
     *
     * @throws IllegalStateException if {@code side} is not held
     */
    public void unlock(Side side) {
        long d = side.delta();
        long now;
        while (true) {
            long old = state.get();
            if (d > 0 ? old <= 0 : old >= 0) {
                throw new IllegalStateException("unlock(" + side + ") but " + side + " is not held: " + this);
            }
            now = old - d;
            if (state.compareAndSet(old, now)) {
                break;
            }
        }
        if (now == 0 && waiters.get() > 0) { // counter written before waiters read: see header
            monitor.lock();
            try {
                drained.signalAll();
            } finally {
                monitor.unlock();
            }
        }
    }

    /** How many hold {@code side} right now (a racy snapshot). */
    public long holders(Side side) {
        long v = state.get();
        return side == Side.ADD ? Math.max(0, -v) : Math.max(0, v);
    }

    /** Both holder counts from one read of the counter. */
    public Snapshot snapshot() {
        long v = state.get();
        return new Snapshot(Math.max(0, -v), Math.max(0, v));
    }

    /** Acquisitions of {@code side} that missed the fast path and entered the wait path. */
    public long contendedWaits(Side side) {
        return (side == Side.ADD ? contendedAdd : contendedBlock).sum();
    }

    /** Threads currently in the wait path (racy; for tests and metrics). */
    public int waiting() {
        return waiters.get();
    }

    @Override
    public String toString() {
        long v = state.get();
        return "TwoStateSharedLock[" + (v == 0 ? "free" : v < 0 ? "ADD x" + -v : "BLOCK x" + v) + "]";
    }
}
