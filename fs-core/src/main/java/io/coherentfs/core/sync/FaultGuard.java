package io.coherentfs.core.sync;

import io.coherentfs.core.sync.TwoStateSharedLock.Side;
import java.util.Objects;

/**
 * Fault-recursion detection for the {@code pagecache_add_lock} (M3; bcachefs's
 * {@code faults_disabled_mapping}, mechanisms-reference.md "Fault-recursion detection").
 *
 * <p>A direct write holds its mapping's lock on the BLOCK side while it reads its source buffer.
 * If that buffer is a mapped view of a file, reading it faults pages in, and a fault takes the
 * faulted mapping's lock on the ADD side. Userspace picks both files, so no fixed lock order can
 * be imposed up front; instead the direct write records, per thread, which mapping it blocks
 * ({@link #disableFaultsFor}) and the fault path ({@link #faultLock}) decides:
 * <ol>
 *   <li>fault on the <em>same</em> mapping: it would wait on the BLOCK its own thread holds.
 *       Throw {@link FaultRecursionException} (EFAULT); the direct-write loop bounces the source
 *       with no lock held and retries.
 *   <li>fault on a mapping that orders <em>before</em> the blocked one (wrong order): try ADD;
 *       if that fails, drop our BLOCK, wait for ADD (lets the other mapping's blockers drain),
 *       release it, re-take our BLOCK, flag "locks dropped" and return {@link Outcome#RETRY}:
 *       the fault fails and the direct-write loop re-invalidates and retries.
 *   <li>otherwise (faults enabled, or right order): wait for ADD; {@link Outcome#LOCKED}.
 * </ol>
 *
 * <p><b>Ordering rule</b>: mappings are ordered by inode number, ascending (DESIGN.md section 4,
 * tier 3): a thread may wait for mapping M's lock while holding mapping F's only if
 * {@code inode(F) < inode(M)}. Equal numbers on distinct locks (should not happen within one
 * filesystem) are treated as the wrong order, which only costs a retry.
 *
 * <p><b>Locks</b>: on entry to {@code faultLock} the thread holds F's BLOCK if faults are
 * disabled (and i_rwsem, tier 1, taken by the direct write; nothing below tier 3). On
 * {@code LOCKED} it additionally holds the target's ADD. On {@code RETRY} it holds F's BLOCK
 * again (it was released and re-taken: pages may have been added to F meanwhile, hence the
 * re-invalidation) and not the target's ADD. On {@code FaultRecursionException} it holds what it
 * held on entry.
 *
 * <p><b>Thread confinement</b>: the state is a {@link ThreadLocal}, read and written only by its
 * own thread, like a field of the kernel's {@code task_struct}; nothing here is shared between
 * threads except the locks themselves. One {@code FaultGuard} is held per filesystem engine
 * (with that engine's {@link RacePoints}).
 */
public final class FaultGuard {
    /** What {@link #faultLock} did. */
    public enum Outcome {
        /** The target's ADD side is held; fill the page, then unlock ADD. */
        LOCKED,
        /** Locks were dropped and re-taken; ADD is not held; fail the fault, the DIO retries. */
        RETRY
    }

    /**
     * The mapping a direct write blocks: its lock (held on the BLOCK side by this thread) and its
     * order key (inode number).
     */
    public record BlockedMapping(TwoStateSharedLock lock, long order) {
        public BlockedMapping {
            Objects.requireNonNull(lock, "lock");
        }
    }

    /** Hit after the BLOCK lock was dropped in the wrong-order case, before waiting for ADD. */
    public static final String RACE_LOCKS_DROPPED = "fault-guard.locks-dropped";

    private static final class State {
        BlockedMapping faultsDisabled;
        boolean locksDropped;
    }

    private final ThreadLocal<State> state = ThreadLocal.withInitial(State::new);
    private final RacePoints racePoints;

    public FaultGuard() {
        this(RacePoints.NONE);
    }

    public FaultGuard(RacePoints racePoints) {
        this.racePoints = Objects.requireNonNull(racePoints, "racePoints");
    }

    /**
     * Direct write: records that this thread holds {@code lock}'s BLOCK side, so faults on it
     * fail and faults on mappings ordered before it do not wait while holding it.
     *
     * @throws IllegalStateException if faults are already disabled on this thread, or nobody
     *     holds {@code lock}'s BLOCK side
     */
    public void disableFaultsFor(TwoStateSharedLock lock, long order) {
        State s = state.get();
        if (s.faultsDisabled != null) {
            throw new IllegalStateException("faults already disabled for " + s.faultsDisabled);
        }
        if (lock.holders(Side.BLOCK) == 0) {
            throw new IllegalStateException("disableFaultsFor without holding BLOCK: " + lock);
        }
        s.faultsDisabled = new BlockedMapping(lock, order);
    }

    /** Direct write: faults on this thread take locks normally again. Idempotent. */
    public void enable() {
        state.get().faultsDisabled = null;
    }

    /** The mapping this thread's direct write blocks, or null if faults are enabled. */
    public BlockedMapping current() {
        return state.get().faultsDisabled;
    }

    /** Records that this thread dropped and re-took its BLOCK lock. */
    public void markLocksDropped() {
        state.get().locksDropped = true;
    }

    /** Direct write: whether locks were dropped since the last call; clears the flag. */
    public boolean takeLocksDropped() {
        State s = state.get();
        boolean dropped = s.locksDropped;
        s.locksDropped = false;
        return dropped;
    }

    /**
     * Fault path: takes {@code target}'s ADD side, or reports why it must not. See the class
     * header for the three cases and the locks held on each exit.
     *
     * @param target the faulted mapping's {@code pagecache_add_lock}
     * @param targetOrder the faulted mapping's order key (inode number)
     * @throws FaultRecursionException if {@code target} is the mapping this thread's direct write
     *     blocks
     */
    public Outcome faultLock(TwoStateSharedLock target, long targetOrder) throws FaultRecursionException {
        State s = state.get();
        BlockedMapping f = s.faultsDisabled;
        if (f == null) {
            target.lock(Side.ADD);
            return Outcome.LOCKED;
        }
        if (f.lock() == target) {
            throw new FaultRecursionException(targetOrder);
        }
        if (f.order() < targetOrder) { // right order: holding a lower inode, waiting on a higher
            target.lock(Side.ADD);
            return Outcome.LOCKED;
        }
        // Wrong order: waiting here while holding F's BLOCK could deadlock against a thread that
        // holds target's BLOCK and faults on F.
        if (target.tryLock(Side.ADD)) {
            return Outcome.LOCKED;
        }
        f.lock().unlock(Side.BLOCK);
        racePoints.hit(RACE_LOCKS_DROPPED);
        target.lock(Side.ADD); // lets target's blockers drain; we hold nothing at tier 3 here
        target.unlock(Side.ADD);
        f.lock().lock(Side.BLOCK);
        s.locksDropped = true;
        return Outcome.RETRY;
    }
}
