package io.coherentfs.core.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.core.sync.RacePoints;
import java.util.Objects;
import java.util.concurrent.Executor;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The global page cache: the memory budget over every {@link FolioMapping} (DESIGN.md section 6).
 * Folio memory comes from one {@link AlignedBufferPool} (4 KiB slices of large slabs).
 *
 * <h2>Eviction design: Caffeine tracks only clean folios</h2>
 * A folio's home is its {@link FolioMapping}; Caffeine is only the eviction <em>policy</em>. The
 * Caffeine cache {@code tracker} (key and value: the folio, by identity; weight
 * {@value Folio#PAGE_SIZE}; {@code maximumWeight} = the budget) holds exactly the folios that may
 * be evicted: the clean ones. Dirty and writeback folios are absent, which is weight 0 in effect:
 * they are pinned and do not count against the budget until they are clean again.
 * <ul>
 *   <li><b>sync.</b> Every transition that may change whether a folio is clean calls
 *       {@link #sync}, a {@code compute} on the folio's key that reads the folio's current state
 *       and inserts it (clean) or removes it (dirty, writeback, removed), setting the folio's
 *       {@code TRACKED} bit to match. Caffeine serializes computes per key, and each reads the
 *       state as of its own run, so the last one leaves the tracker right. Callers: {@code
 *       markDirty} (clean -> dirty), {@code unlock} and {@code endWriteback} when their CAS left
 *       the folio clean, unlocked and untracked.
 *   <li><b>Locked folios are never evicted.</b> A clean folio stays tracked while locked (locking
 *       is the hot path and must not touch Caffeine). When Caffeine picks a victim, the eviction
 *       listener (cause {@link RemovalCause#SIZE}) tries to <em>claim</em> it with one CAS that
 *       requires "unlocked, clean, no writeback" and sets LOCKED + REMOVED. If the claim fails,
 *       Caffeine has already dropped the entry (a listener cannot veto), so the same CAS that saw
 *       the blocking state clears {@code TRACKED}: whoever clears that state later (unlock,
 *       endWriteback) sees an untracked clean folio and syncs it back. Because both sides decide
 *       with a CAS on the one state word, either the unlock comes first (the claim succeeds) or
 *       the claim comes first (the unlock re-syncs): a folio is never lost from the policy and a
 *       dirty, writeback or locked folio is never dropped.
 *   <li><b>Eviction never blocks on IO.</b> The listener only CASes, removes the folio from its
 *       mapping's index, returns the buffer to the pool and wakes waiters. It runs inside
 *       Caffeine's maintenance (on the {@code maintenance} executor or a writing thread), possibly
 *       while the writing thread holds a folio lock; it never waits for any lock, so that is safe.
 * </ul>
 *
 * <h2>Accounting</h2>
 * {@link #totalBytes()} counts every attached folio; {@link #dirtyBytes()} dirty ones (a folio
 * re-dirtied under writeback counts in both dirty and writeback); {@link #writebackBytes()} those
 * under writeback. After {@link #cleanUp()} with no concurrent activity, {@code totalBytes <=
 * budget + pinned}, where pinned is the bytes of dirty, writeback and locked folios.
 */
public final class PageCache {
    private final AlignedBufferPool pool;
    private final long budgetBytes;
    private final RacePoints racePoints;
    private final Cache<Folio, Folio> tracker;
    private final AtomicLong totalBytes = new AtomicLong();
    private final AtomicLong dirtyBytes = new AtomicLong();
    private final AtomicLong writebackBytes = new AtomicLong();
    private static final int EPOCH_EVICTIONS = 64;
    private final LongAdder evictions = new LongAdder();
    /** evictions / {@value #EPOCH_EVICTIONS}, kept as a field so a cache hit reads one int. */
    private volatile int accessEpoch;
    private final java.util.concurrent.atomic.AtomicLong evictionTicks = new java.util.concurrent.atomic.AtomicLong();
    private final LongAdder refusedEvictions = new LongAdder();

    /** A cache whose eviction maintenance runs on the common pool. */
    public PageCache(AlignedBufferPool pool, long budgetBytes) {
        this(pool, budgetBytes, ForkJoinPool.commonPool(), RacePoints.NONE);
    }

    /**
     * @param pool where folio memory comes from; must outlive the cache
     * @param budgetBytes the most bytes of clean folios kept (dirty, writeback and locked folios
     *     come on top)
     * @param maintenance runs Caffeine's eviction work ({@code Runnable::run} for the caller's
     *     thread)
     * @param racePoints handed to every mapping and its add lock
     */
    public PageCache(AlignedBufferPool pool, long budgetBytes, Executor maintenance, RacePoints racePoints) {
        this.pool = Objects.requireNonNull(pool, "pool");
        if (budgetBytes < Folio.PAGE_SIZE) {
            throw new IllegalArgumentException("page cache budget must be at least one page, got " + budgetBytes);
        }
        this.budgetBytes = budgetBytes;
        this.racePoints = Objects.requireNonNull(racePoints, "racePoints");
        this.tracker = Caffeine.newBuilder()
                .maximumWeight(budgetBytes)
                .weigher((Folio k, Folio v) -> Folio.PAGE_SIZE)
                .executor(Objects.requireNonNull(maintenance, "maintenance"))
                .evictionListener((Folio k, Folio v, RemovalCause cause) -> onEviction(k, cause))
                .build();
    }

    /** A new, empty mapping for {@code inode}. */
    public FolioMapping newMapping(long inode) {
        return new FolioMapping(this, inode, racePoints);
    }

    public long budgetBytes() {
        return budgetBytes;
    }

    /** Bytes of all folios attached to some mapping. */
    public long totalBytes() {
        return totalBytes.get();
    }

    public long dirtyBytes() {
        return dirtyBytes.get();
    }

    public long writebackBytes() {
        return writebackBytes.get();
    }

    /** Bytes of the folios the eviction policy tracks (the clean ones, roughly; after cleanUp, at most the budget). */
    public long trackedBytes() {
        return tracker.policy().eviction().orElseThrow().weightedSize().orElse(0L);
    }

    /** Folios evicted to stay within the budget. */
    public long evictions() {
        return evictions.sum();
    }

    /** Victims Caffeine picked that were locked (or had just been dirtied) and so were kept. */
    public long refusedEvictions() {
        return refusedEvictions.sum();
    }

    /** Runs pending eviction work now, on this thread. */
    public void cleanUp() {
        tracker.cleanUp();
    }

    // ---------------------------------------------------------------- package-private protocol

    AlignedBuffer allocatePage() {
        return pool.allocate(Folio.PAGE_SIZE);
    }

    /** Makes the tracker agree with the folio's state; see the class header. */
    void sync(Folio f) {
        tracker.asMap().compute(f, (k, v) -> k.updateTracked() ? k : null);
    }

    /** Takes a claimed (REMOVED) folio out of the tracker, without the eviction listener. */
    void untrack(Folio f) {
        tracker.asMap().remove(f);
    }

    /**
     * Tells the policy that {@code f} was used. To keep cached reads cheap, a folio reports at
     * most once per <em>access epoch</em>, which advances every {@value #EPOCH_EVICTIONS}
     * evictions: while nothing is evicted the policy needs no news, and under pressure it hears of
     * every folio in use at least once per few dozen evictions (a coarse clock, like the kernel's
     * referenced bit).
     */
    void recordAccess(Folio f) {
        int epoch = accessEpoch;
        if (f.accessEpoch != epoch) {
            f.accessEpoch = epoch;
            tracker.getIfPresent(f);
        }
    }

    /** Detaches a claimed folio, frees its memory and wakes whoever waits for its lock. */
    void release(Folio f) {
        f.mapping().detach(f);
        totalBytes.addAndGet(-Folio.PAGE_SIZE);
        f.buffer().close();
        f.finishReclaim();
    }

    void addTotal(long delta) {
        totalBytes.addAndGet(delta);
    }

    void addDirty(long delta) {
        dirtyBytes.addAndGet(delta);
    }

    void addWriteback(long delta) {
        writebackBytes.addAndGet(delta);
    }

    /** Caffeine's eviction listener: runs inside the compute that removed {@code f}. Never blocks. */
    private void onEviction(Folio f, RemovalCause cause) {
        if (!cause.wasEvicted() || f == null) {
            return;
        }
        if (f.claimForReclaim(true)) {
            evictions.increment();
            long ticks = evictionTicks.incrementAndGet();
            if (ticks % EPOCH_EVICTIONS == 0) {
                accessEpoch = (int) (ticks / EPOCH_EVICTIONS);
            }
            release(f);
        } else if (!f.isRemoved()) {
            refusedEvictions.increment();
        }
    }

    @Override
    public String toString() {
        return "PageCache[budget=" + budgetBytes + ", total=" + totalBytes.get() + ", dirty=" + dirtyBytes.get()
                + ", writeback=" + writebackBytes.get() + ", tracked=" + trackedBytes() + "]";
    }
}
