package io.coherentfs.core.cache;

import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.sync.TwoStateSharedLock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The cached pages of one inode (the kernel's {@code address_space}): page index -> {@link Folio}.
 *
 * <h2>Locks (outermost first; DESIGN.md section 4)</h2>
 * <ol>
 *   <li>(tier 1, {@code i_rwsem}, lives on the inode, not here)
 *   <li>{@link #invalidateLock()} (tier 2): truncate, punch hole, zero range and delalloc release
 *       take it exclusive; the paths that add pages take it shared.
 *   <li>{@link #addLock()} (tier 3, {@code pagecache_add_lock}, mechanism M3): every page-cache
 *       add (read fill, readahead, write_begin, fault) holds the {@code ADD} side around
 *       {@link #getOrCreate}; direct IO and truncate hold {@code BLOCK}. When several mappings
 *       are involved, take their add locks in inode-number order.
 *   <li>folio lock (tier 4): {@link Folio#lock()}.
 * </ol>
 * A lower tier is never held while taking a higher one: holding a folio lock, do not take the
 * invalidate or add lock. This class does not take tiers 2 and 3 itself (they are fields for the
 * IO paths, which know the operation); it does not check that callers hold them either.
 *
 * <h2>Concurrency design</h2>
 * The index is a {@link PageIndex} (a small lock-free radix tree): lookups never lock, and ordered traversal serves
 * {@link #seekData}, {@link #seekHole} and {@link #dirtyRange}. A folio is inserted locked by
 * {@link #getOrCreate} ({@code putIfAbsent}; the loser of a race frees its buffer and locks the
 * winner's folio) and leaves the index only after it was claimed (locked and marked removed in one
 * CAS) by eviction or {@link #remove}; it is detached from the index <em>before</em> its lock is
 * released, so a thread that waited for the lock of a removed folio sees {@link Folio#isRemoved()}
 * and looks up again. {@link #nrpages()} is a counter kept with the index (exact when quiescent).
 * Traversals are weakly consistent snapshots: a folio may be added or removed while they run.
 */
public final class FolioMapping {
    /** Hit in {@link #getOrCreate} after the new folio is built, before it is inserted. */
    public static final String RACE_BEFORE_INSERT = "folio-mapping.before-insert";

    private final PageCache cache;
    private final long inode;
    private final RacePoints racePoints;
    private final PageIndex pages = new PageIndex();
    private final AtomicLong nrpages = new AtomicLong();
    /** Tier 2. */
    private final ReentrantReadWriteLock invalidateLock = new ReentrantReadWriteLock();
    /** Tier 3. */
    private final TwoStateSharedLock addLock;

    FolioMapping(PageCache cache, long inode, RacePoints racePoints) {
        this.cache = cache;
        this.inode = inode;
        this.racePoints = racePoints;
        this.addLock = new TwoStateSharedLock(racePoints);
    }

    public long inode() {
        return inode;
    }

    public PageCache cache() {
        return cache;
    }

    /** Lock tier 2 ({@code invalidate_lock}). */
    public ReentrantReadWriteLock invalidateLock() {
        return invalidateLock;
    }

    /** Lock tier 3 ({@code pagecache_add_lock}). */
    public TwoStateSharedLock addLock() {
        return addLock;
    }

    /** Folios in the mapping. */
    public long nrpages() {
        return nrpages.get();
    }

    /**
     * The folio at {@code index}, unlocked, or null. Records an access for the eviction policy.
     * The folio may be evicted at any moment; lock it and check {@link Folio#isRemoved()} before
     * touching its data, or use {@link #lock(long)}.
     */
    public Folio get(long index) {
        Folio f = pages.get(index);
        if (f != null) {
            cache.recordAccess(f);
        }
        return f;
    }

    /** The folio at {@code index}, locked and attached, or null if none is cached. */
    public Folio lock(long index) {
        while (true) {
            Folio f = get(index);
            if (f == null) {
                return null;
            }
            f.lock();
            if (!f.isRemoved()) {
                return f;
            }
            f.unlock(); // evicted while we waited: look again
        }
    }

    /**
     * The folio at {@code index}, locked: the cached one, or a new one that is locked and not
     * uptodate (the caller fills it, marks it uptodate and unlocks it, or unlocks it without
     * marking it if the fill failed). Call with the {@link #addLock()} ADD side held. At most one
     * folio per index is ever created: the loser of a race frees its buffer.
     */
    public Folio getOrCreate(long index) {
        if (index < 0) {
            throw new IllegalArgumentException("negative page index " + index);
        }
        Folio fresh = null;
        try {
            while (true) {
                Folio found = lock(index);
                if (found != null) {
                    return found;
                }
                if (fresh == null) {
                    fresh = new Folio(this, index, cache.allocatePage());
                }
                racePoints.hit(RACE_BEFORE_INSERT);
                if (pages.putIfAbsent(index, fresh) == null) {
                    nrpages.incrementAndGet();
                    cache.addTotal(Folio.PAGE_SIZE);
                    Folio created = fresh;
                    fresh = null;
                    return created;
                }
                // lost the race: give the page back now (we may wait long for the winner's
                // lock) and lock the winner's folio on the next turn
                fresh.buffer().close();
                fresh = null;
            }
        } finally {
            if (fresh != null) {
                fresh.buffer().close();
            }
        }
    }

    /**
     * A new folio at {@code index}, locked and not uptodate, or null when one is cached already.
     * Never waits for a folio lock, so it may be called holding locks of folios at higher
     * indices (read-around extends a run downwards). Call with the ADD side held.
     */
    public Folio createIfAbsent(long index) {
        if (index < 0 || pages.get(index) != null) {
            return null;
        }
        Folio fresh = new Folio(this, index, cache.allocatePage());
        racePoints.hit(RACE_BEFORE_INSERT);
        if (pages.putIfAbsent(index, fresh) != null) {
            fresh.buffer().close();
            return null;
        }
        nrpages.incrementAndGet();
        cache.addTotal(Folio.PAGE_SIZE);
        return fresh;
    }

    /**
     * Removes the folio at {@code index} if it is clean, unlocked and not under writeback
     * (invalidate_inode_page). Its buffer goes back to the pool.
     *
     * @return true if a folio was removed; false if none was cached or it was busy (locked,
     *     dirty or under writeback)
     */
    public boolean remove(long index) {
        Folio f = pages.get(index);
        if (f == null || !f.claimForReclaim(false)) {
            return false;
        }
        cache.untrack(f);
        cache.release(f);
        return true;
    }

    /**
     * Removes every cached folio with index in {@code [fromIndex, toIndex)}, dirty ones included
     * (truncate_inode_pages_range): each is locked, its writeback waited for, its dirty state
     * cancelled, and it is freed. The caller holds the invalidate lock exclusive (nothing adds
     * pages meanwhile) and no folio lock.
     *
     * @return the number of folios removed
     */
    public long truncate(long fromIndex, long toIndex) {
        long removed = 0;
        if (fromIndex >= toIndex) {
            return 0;
        }
        for (Long index : cachedIndices(fromIndex, toIndex)) {
            Folio f = lock(index);
            if (f == null) {
                continue;
            }
            f.waitForWriteback();
            f.cancelDirty();
            f.claimLocked();
            cache.untrack(f);
            cache.release(f);
            removed++;
        }
        return removed;
    }

    /**
     * Removes a folio the caller holds locked, which must be clean and not under writeback
     * (invalidation after its dirty data was written back). The lock ends with the removal.
     */
    public void removeLocked(Folio f) {
        f.claimLocked();
        cache.untrack(f);
        cache.release(f);
    }

    /** The cached indices in {@code [fromIndex, toIndex)}, in order: a weakly consistent snapshot. */
    public List<Long> cachedIndices(long fromIndex, long toIndex) {
        if (fromIndex >= toIndex) {
            return List.of();
        }
        List<Long> out = new ArrayList<>();
        pages.forEach(fromIndex, toIndex, (i, f) -> out.add(i));
        return out;
    }

    /** True when some folio of the mapping is dirty (a scan: for eviction and tests). */
    public boolean hasDirty() {
        boolean[] found = {false};
        pages.forEach(0, Long.MAX_VALUE, (i, f) -> !(found[0] = f.isDirty() || f.isWriteback()));
        return found[0];
    }

    /**
     * The smallest cached index {@code >= fromIndex}, or -1 if none. Any cached folio counts as
     * data (uptodate, dirty or being filled). Weakly consistent.
     */
    public long seekData(long fromIndex) {
        return pages.ceiling(Math.max(0, fromIndex));
    }

    /**
     * The smallest index {@code >= fromIndex} with no cached folio (always exists below
     * {@code Long.MAX_VALUE}). Weakly consistent.
     */
    public long seekHole(long fromIndex) {
        long[] next = {Math.max(0, fromIndex)};
        pages.forEach(next[0], Long.MAX_VALUE, (i, f) -> {
            if (i != next[0]) {
                return false;
            }
            next[0]++;
            return true;
        });
        return next[0];
    }

    /**
     * The dirty folios with index in {@code [fromIndex, toIndex)}, in index order, unlocked. A
     * snapshot: a folio may be cleaned, dirtied or evicted after it was listed; lock it and
     * re-check before acting.
     */
    public List<Folio> dirtyRange(long fromIndex, long toIndex) {
        List<Folio> out = new ArrayList<>();
        if (fromIndex >= toIndex) {
            return out;
        }
        pages.forEach(fromIndex, toIndex, (i, f) -> {
            if (f.isDirty()) {
                out.add(f);
            }
            return true;
        });
        return out;
    }

    /** Detaches a claimed folio from the index (called by {@link PageCache#release}). */
    void detach(Folio f) {
        if (pages.remove(f.index(), f)) {
            nrpages.decrementAndGet();
        }
    }

    @Override
    public String toString() {
        return "FolioMapping[ino=" + inode + ", nrpages=" + nrpages.get() + "]";
    }
}
