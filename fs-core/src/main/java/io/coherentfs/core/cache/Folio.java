package io.coherentfs.core.cache;

import io.coherentfs.blockdev.AlignedBuffer;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Objects;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One 4 KiB page of a file's data in memory (the kernel's {@code struct folio}, order 0): its page
 * index in the file, a {@value #PAGE_SIZE}-byte native segment carved from the page cache's
 * {@link io.coherentfs.blockdev.AlignedBufferPool} (so writeback can hand it to the device with no
 * copy), and the kernel's state flags. Folios are created only by
 * {@link FolioMapping#getOrCreate}; they never move to another index or mapping.
 *
 * <h2>States and legal transitions</h2>
 * <pre>
 *   lock()/tryLock()   !locked                      -> locked      (waits while locked)
 *   unlock()           locked                       -> !locked     (any thread may unlock, as in
 *                                                                   the kernel: IO completion does)
 *   markUptodate()     locked                       -> uptodate    (the filler holds the lock)
 *   clearUptodate()    locked, !dirty, !writeback   -> !uptodate
 *   markDirty()        locked, uptodate             -> dirty       (also while under writeback:
 *                                                                   a folio can be re-dirtied)
 *   cancelDirty()      locked                       -> !dirty      (truncate drops the data)
 *   startWriteback()   locked, dirty, !writeback    -> writeback, !dirty (clear_page_dirty_for_io)
 *   endWriteback()     writeback                    -> !writeback  (IO completion; no lock needed)
 * </pre>
 * Anything else throws {@link IllegalStateException}. Hence: dirty implies uptodate (uptodate can
 * only be cleared on a clean folio), and writeback starts only on a locked dirty folio. A folio
 * removed from its mapping (evicted or {@link FolioMapping#remove removed}) is <em>detached</em>:
 * its memory went back to the pool, and every transition except lock/unlock throws.
 *
 * <h2>Concurrency design</h2>
 * <ul>
 *   <li><b>One state word.</b> All flags live in one {@code int} changed only by CAS, so a check
 *       and the change it guards are one atomic step. This is what lets eviction decide "clean,
 *       unlocked, not under writeback" without taking any lock (see {@link PageCache}).
 *   <li><b>The folio lock</b> (lock tier 4, DESIGN.md section 4) is the {@code LOCKED} bit: a
 *       non-reentrant mutex with no owner, like {@code folio_lock}. Holding it is what allows
 *       reading or writing {@link #data()} (writeback reads the data with only {@code WRITEBACK}
 *       set, which also pins the folio). Never take a tier 1-3 lock while holding it.
 *   <li><b>Waiting without a lock object per folio.</b> Waiters for the lock or for writeback end
 *       park on one of {@value #WAIT_STRIPES} shared striped monitors chosen by the folio's
 *       identity (the kernel's hashed folio wait table) and set the {@code WAITERS} bit
 *       (PG_waiters) by CAS while holding the stripe's monitor. A waker clears the busy bit and
 *       {@code WAITERS} in one CAS and, only if {@code WAITERS} was set, signals every waiter of
 *       the stripe under its monitor. No lost wake-up: a waiter's CAS that sets {@code WAITERS}
 *       either precedes the waker's CAS (the waker sees the bit and signals, and cannot get the
 *       monitor before the waiter awaits) or follows it (the waiter sees the busy bit clear and
 *       does not wait). Woken waiters re-check and, if still blocked, set {@code WAITERS} again.
 *   <li><b>Cache tracking.</b> The {@code TRACKED} bit says "Caffeine may hold this folio"; it
 *       is a hint that lets {@link #unlock} and {@link #endWriteback} skip the cache unless the
 *       folio just became clean and untracked. See {@link PageCache} for the protocol.
 * </ul>
 */
public final class Folio {
    public static final int PAGE_SIZE = 4096;
    public static final int PAGE_SHIFT = 12;

    static final int LOCKED = 1;
    static final int UPTODATE = 1 << 1;
    static final int DIRTY = 1 << 2;
    static final int WRITEBACK = 1 << 3;
    /** Some thread waits on this folio's stripe for LOCKED or WRITEBACK to clear. */
    static final int WAITERS = 1 << 4;
    /** Caffeine may hold this folio (set and cleared only inside the cache's per-key compute or by a refused eviction). */
    static final int TRACKED = 1 << 5;
    /** Detached from its mapping; memory returned to the pool. Never cleared. */
    static final int REMOVED = 1 << 6;

    private static final int WAIT_STRIPES = 64;
    private static final ReentrantLock[] WAIT_LOCKS = new ReentrantLock[WAIT_STRIPES];
    private static final Condition[] WAKE_UPS = new Condition[WAIT_STRIPES];
    private static final VarHandle STATE;

    static {
        for (int i = 0; i < WAIT_STRIPES; i++) {
            WAIT_LOCKS[i] = new ReentrantLock();
            WAKE_UPS[i] = WAIT_LOCKS[i].newCondition();
        }
        try {
            STATE = MethodHandles.lookup().findVarHandle(Folio.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final FolioMapping mapping;
    private final long index;
    private final AlignedBuffer buffer;
    /** The cache's access epoch when this folio last reported an access (racy on purpose: a hint). */
    int accessEpoch = -1;
    private final MemorySegment data;
    /** The flags above; written only through {@link #STATE} (CAS or volatile set). */
    @SuppressWarnings("unused") // accessed through STATE
    private volatile int state;

    /** A new folio, locked and not uptodate (the creator fills it). */
    Folio(FolioMapping mapping, long index, AlignedBuffer buffer) {
        this.mapping = Objects.requireNonNull(mapping, "mapping");
        this.index = index;
        this.buffer = buffer;
        this.data = buffer.segment();
        if (data.byteSize() != PAGE_SIZE) {
            throw new IllegalArgumentException("folio buffer must be " + PAGE_SIZE + " bytes, got " + data.byteSize());
        }
        this.state = LOCKED;
    }

    /** The page index in the file: the folio holds bytes {@code [index * 4096, (index + 1) * 4096)}. */
    public long index() {
        return index;
    }

    /** Byte offset of the folio's first byte in the file. */
    public long position() {
        return index << PAGE_SHIFT;
    }

    public FolioMapping mapping() {
        return mapping;
    }

    /**
     * The folio's {@value #PAGE_SIZE} bytes. Use only while holding the lock, or as the source of
     * a writeback this thread started (then {@code WRITEBACK} pins the folio).
     *
     * @throws IllegalStateException if the folio was removed from its mapping
     */
    public MemorySegment data() {
        if ((state() & REMOVED) != 0) {
            throw new IllegalStateException("folio was removed from its mapping: " + this);
        }
        return data;
    }

    // ---------------------------------------------------------------- flags (racy snapshots)

    public boolean isLocked() {
        return (state() & LOCKED) != 0;
    }

    public boolean isUptodate() {
        return (state() & UPTODATE) != 0;
    }

    public boolean isDirty() {
        return (state() & DIRTY) != 0;
    }

    public boolean isWriteback() {
        return (state() & WRITEBACK) != 0;
    }

    /** True once the folio was evicted or removed; it is then no longer in its mapping. */
    public boolean isRemoved() {
        return (state() & REMOVED) != 0;
    }

    /** True while some thread waits for this folio's lock or writeback end (for tests). */
    public boolean hasWaiters() {
        return (state() & WAITERS) != 0;
    }

    // ---------------------------------------------------------------- the folio lock

    /** Takes the folio lock if it is free; never waits. */
    public boolean tryLock() {
        while (true) {
            int s = state();
            if ((s & LOCKED) != 0) {
                return false;
            }
            if (cas(s, s | LOCKED)) {
                return true;
            }
        }
    }

    /**
     * Takes the folio lock, parking (uninterruptibly) while another holds it. After it returns,
     * check {@link #isRemoved()}: a folio found by lookup may have been evicted meanwhile
     * ({@link FolioMapping#lock} and {@link FolioMapping#getOrCreate} do this for you).
     */
    public void lock() {
        if (!tryLock()) {
            awaitClear(LOCKED, true, false);
        }
    }

    /** As {@link #lock()}, but gives up if interrupted (the lock is then not held). */
    public void lockInterruptibly() throws InterruptedException {
        if (Thread.interrupted()) {
            throw new InterruptedException();
        }
        if (!tryLock() && !awaitClear(LOCKED, true, true)) {
            throw new InterruptedException();
        }
    }

    /**
     * Releases the folio lock and wakes its waiters. Any thread may release it (no owner). If the
     * folio is now clean and untracked, hands it to the page cache's eviction policy.
     *
     * @throws IllegalStateException if the folio is not locked
     */
    public void unlock() {
        int old = clearAndWake(LOCKED, "unlock");
        afterPossibleClean(old & ~(LOCKED | WAITERS));
    }

    // ---------------------------------------------------------------- state transitions

    /** Marks the folio's contents valid. Requires the lock (the filler holds it). */
    public void markUptodate() {
        update("markUptodate", LOCKED, REMOVED, UPTODATE, 0);
    }

    /** Marks the contents invalid (a failed read). Requires the lock and a clean folio. */
    public void clearUptodate() {
        update("clearUptodate", LOCKED, DIRTY | WRITEBACK | REMOVED, 0, UPTODATE);
    }

    /**
     * Marks the folio dirty (write_end, page_mkwrite). Requires the lock and uptodate; allowed
     * while under writeback (the folio is re-dirtied and will be written again).
     *
     * @return true if the folio was clean before (its bytes were added to the dirty count)
     */
    public boolean markDirty() {
        int old = update("markDirty", LOCKED | UPTODATE, REMOVED, DIRTY, 0);
        if ((old & DIRTY) != 0) {
            return false;
        }
        PageCache cache = mapping.cache();
        cache.addDirty(PAGE_SIZE);
        if ((old & WRITEBACK) == 0) {
            cache.sync(this); // clean -> pinned: take it away from the eviction policy
        }
        return true;
    }

    /**
     * Drops the dirty flag without writing (truncate, punch). Requires the lock.
     *
     * @return true if the folio was dirty
     */
    public boolean cancelDirty() {
        int old = update("cancelDirty", LOCKED, REMOVED, 0, DIRTY);
        if ((old & DIRTY) == 0) {
            return false;
        }
        mapping.cache().addDirty(-PAGE_SIZE);
        return true; // still locked: unlock() hands it back to the eviction policy
    }

    /**
     * Starts writeback: clears dirty and sets writeback in one step (clear_page_dirty_for_io plus
     * folio_start_writeback). Requires the lock, dirty, and no writeback in flight (wait for it
     * first with {@link #waitForWriteback()}). The caller then unlocks and submits the IO; the
     * completion calls {@link #endWriteback()}.
     */
    public void startWriteback() {
        update("startWriteback", LOCKED | DIRTY, WRITEBACK | REMOVED, WRITEBACK, DIRTY);
        PageCache cache = mapping.cache();
        cache.addDirty(-PAGE_SIZE);
        cache.addWriteback(PAGE_SIZE);
    }

    /**
     * Ends writeback (IO completion; no lock needed) and wakes {@link #waitForWriteback} callers.
     * If the folio is now clean and unlocked, hands it to the eviction policy.
     *
     * @throws IllegalStateException if the folio is not under writeback
     */
    public void endWriteback() {
        int old = clearAndWake(WRITEBACK, "endWriteback");
        mapping.cache().addWriteback(-PAGE_SIZE);
        afterPossibleClean(old & ~(WRITEBACK | WAITERS));
    }

    /** Parks (uninterruptibly) until no writeback is in flight. Returns at once if none is. */
    public void waitForWriteback() {
        if ((state() & WRITEBACK) != 0) {
            awaitClear(WRITEBACK, false, false);
        }
    }

    /** As {@link #waitForWriteback()}, but gives up if interrupted. */
    public void waitForWritebackInterruptibly() throws InterruptedException {
        if (Thread.interrupted()) {
            throw new InterruptedException();
        }
        if ((state() & WRITEBACK) != 0 && !awaitClear(WRITEBACK, false, true)) {
            throw new InterruptedException();
        }
    }

    // ---------------------------------------------------------------- for PageCache / FolioMapping

    int state() {
        return (int) STATE.getVolatile(this);
    }

    private boolean cas(int expect, int update) {
        return STATE.compareAndSet(this, expect, update);
    }

    /** Clean, unlocked, no writeback, still attached: what eviction and removal may take. */
    static boolean reclaimable(int s) {
        return (s & (LOCKED | DIRTY | WRITEBACK | REMOVED)) == 0;
    }

    /** Clean and attached: what Caffeine may track (locked clean folios stay tracked). */
    static boolean trackable(int s) {
        return (s & (DIRTY | WRITEBACK | REMOVED)) == 0;
    }

    /**
     * Claims the folio for eviction or removal: if it is reclaimable, sets LOCKED and REMOVED in
     * one CAS (lookups that find it now wait, then see REMOVED). If not and {@code untrack},
     * clears TRACKED in the same CAS that observed the blocking state, so whoever clears that
     * state afterwards sees the folio untracked and re-syncs it (see {@link PageCache}).
     */
    boolean claimForReclaim(boolean untrack) {
        while (true) {
            int s = state();
            if ((s & REMOVED) != 0) {
                return false;
            }
            if (reclaimable(s)) {
                if (cas(s, (s | LOCKED | REMOVED) & ~TRACKED)) {
                    return true;
                }
            } else if (!untrack || (s & TRACKED) == 0 || cas(s, s & ~TRACKED)) {
                return false;
            }
        }
    }

    /**
     * Claims a folio the caller holds locked for removal (truncate, punch): requires it clean and
     * not under writeback; sets REMOVED and clears TRACKED in one CAS. The lock stays held until
     * {@link PageCache#release} ends the reclaim.
     */
    boolean claimLocked() {
        while (true) {
            int s = state();
            if ((s & LOCKED) == 0 || (s & (DIRTY | WRITEBACK | REMOVED)) != 0) {
                throw illegal("claimLocked", s);
            }
            if (cas(s, (s | REMOVED) & ~TRACKED)) {
                return true;
            }
        }
    }

    /** Called inside the cache's per-key compute: sets or clears TRACKED to match the state. */
    boolean updateTracked() {
        while (true) {
            int s = state();
            boolean track = trackable(s);
            int next = track ? s | TRACKED : s & ~TRACKED;
            if (next == s || cas(s, next)) {
                return track;
            }
        }
    }

    AlignedBuffer buffer() {
        return buffer;
    }

    /** Ends a reclaim: clears LOCKED (REMOVED stays) and wakes waiters, who will see REMOVED. */
    void finishReclaim() {
        clearAndWake(LOCKED, "finishReclaim");
    }

    // ---------------------------------------------------------------- internals

    /**
     * One CAS that checks {@code required} bits are set and {@code forbidden} bits clear, then sets
     * {@code set} and clears {@code clear}. Returns the old state.
     */
    private int update(String op, int required, int forbidden, int set, int clear) {
        while (true) {
            int s = state();
            if ((s & required) != required || (s & forbidden) != 0) {
                throw illegal(op, s);
            }
            if (cas(s, (s | set) & ~clear)) {
                return s;
            }
        }
    }

    /** Clears {@code bit} (which must be set) and WAITERS in one CAS; wakes if WAITERS was set. */
    private int clearAndWake(int bit, String op) {
        int s;
        while (true) {
            s = state();
            if ((s & bit) == 0) {
                throw illegal(op, s);
            }
            if (cas(s, s & ~(bit | WAITERS))) {
                break;
            }
        }
        if ((s & WAITERS) != 0) {
            int stripe = stripe();
            WAIT_LOCKS[stripe].lock();
            try {
                WAKE_UPS[stripe].signalAll();
            } finally {
                WAIT_LOCKS[stripe].unlock();
            }
        }
        return s;
    }

    /** {@code now} is the state our CAS produced; if it is clean, unlocked and untracked, sync. */
    private void afterPossibleClean(int now) {
        if (reclaimable(now) && (now & TRACKED) == 0) {
            mapping.cache().sync(this);
        }
    }

    /**
     * Slow path: parks until {@code bit} is clear, then (if {@code acquire}) sets LOCKED. Returns
     * false only when interruptible and interrupted. See the class header for the protocol.
     */
    private boolean awaitClear(int bit, boolean acquire, boolean interruptible) {
        int stripe = stripe();
        ReentrantLock monitor = WAIT_LOCKS[stripe];
        monitor.lock();
        try {
            while (true) {
                int s = state();
                if ((s & bit) == 0) {
                    if (!acquire || cas(s, s | LOCKED)) {
                        return true;
                    }
                    continue;
                }
                if ((s & WAITERS) == 0 && !cas(s, s | WAITERS)) {
                    continue; // state moved: re-check before waiting
                }
                if (interruptible) {
                    try {
                        WAKE_UPS[stripe].await();
                    } catch (InterruptedException e) {
                        return false; // WAITERS may stay set: it only costs a spurious signal
                    }
                } else {
                    WAKE_UPS[stripe].awaitUninterruptibly();
                }
            }
        } finally {
            monitor.unlock();
        }
    }

    private int stripe() {
        int h = System.identityHashCode(this);
        return (h ^ (h >>> 16)) & (WAIT_STRIPES - 1);
    }

    private IllegalStateException illegal(String op, int s) {
        return new IllegalStateException(op + " not allowed on " + describe(s));
    }

    private String describe(int s) {
        StringBuilder b = new StringBuilder("Folio[ino=").append(mapping.inode()).append(", index=").append(index);
        if ((s & LOCKED) != 0) b.append(", locked");
        if ((s & UPTODATE) != 0) b.append(", uptodate");
        if ((s & DIRTY) != 0) b.append(", dirty");
        if ((s & WRITEBACK) != 0) b.append(", writeback");
        if ((s & REMOVED) != 0) b.append(", removed");
        return b.append(']').toString();
    }

    @Override
    public String toString() {
        return describe(state());
    }
}
