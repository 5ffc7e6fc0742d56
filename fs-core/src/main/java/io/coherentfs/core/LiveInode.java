package io.coherentfs.core;

import io.coherentfs.core.cache.FolioMapping;
import io.coherentfs.core.extent.Mapping;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The in-memory state of an inode in use (the kernel's {@code struct inode}): its locks,
 * reference counts, page-cache mapping, in-memory size and delayed allocations.
 *
 * <h2>Locks (DESIGN.md section 4, outermost first)</h2>
 * <ol>
 *   <li>{@link #rwsem} ({@code i_rwsem}, tier 1): shared for reads and lseek, exclusive for
 *       writes, truncate and fallocate. Eviction holds it exclusive.
 *   <li>the mapping's invalidate lock (tier 2) and add lock (tier 3), then folio locks (tier 4):
 *       see {@link FolioMapping}.
 *   <li>{@link #writebackLock}: one writeback pass over this inode at a time; taken with no
 *       folio lock held, before folio locks.
 *   <li>the tree lock and the allocator (tier 5).
 * </ol>
 * {@code this} (the monitor) guards {@link #lookups}, {@link #opens} and {@link #dead}; it is a
 * leaf lock.
 *
 * <h2>Life</h2>
 * A LiveInode lives in {@code CoherentFs.live} while the inode has lookups or open files, and
 * afterwards too while it keeps a name: up to {@code CoherentFs.UNUSED_INODES_CACHED} unused
 * inodes stay cached with their pages (the kernel's inode cache), an unlinked one goes at once.
 * Eviction ({@code CoherentFs.evictNow}) takes {@link #rwsem} exclusive, marks it {@link #dead}
 * under the monitor when unused, writes back and drops its pages, and removes it from the table
 * before releasing {@code rwsem}; whoever then finds it dead looks it up again and gets a fresh
 * one that reads everything from disk. So at most one live mapping per inode ever holds pages.
 *
 * <h2>Size</h2>
 * {@link #size} is i_size: what stat and reads see. The inode record's size is the <em>disk
 * size</em> (ext4's i_disksize): it covers only data that is on the device, so a crash never
 * shows a file extended over data that was still in the cache. Writeback raises the disk size
 * as it writes; truncate and fallocate set both.
 */
final class LiveInode {
    final long ino;
    /** Tier 1. */
    final ReentrantReadWriteLock rwsem = new ReentrantReadWriteLock();
    /** Serializes writeback passes of this inode. */
    final ReentrantLock writebackLock = new ReentrantLock();
    /** The extent map's sequence: bumped on every change, carried by mappings as their validity cookie. */
    final AtomicLong extentSequence = new AtomicLong();
    final DelallocRanges delalloc = new DelallocRanges();
    /** True while one metadata block is reserved for this inode's delayed blocks; guarded by {@link #delalloc}'s monitor. */
    boolean metaReserved;

    /** Guarded by this. */
    long lookups;
    /** Guarded by this. Open files and mapped views. */
    int opens;
    /** Guarded by this; set once, under {@link #rwsem} exclusive, by eviction. */
    volatile boolean dead;

    /** Loaded state (regular files): set once by {@link #load}. */
    private volatile boolean loaded;
    private volatile int type;
    /** i_size; changed under {@link #rwsem} exclusive. */
    volatile long size;
    /**
     * True when the extent map held written blocks past the end of the file at load: a crash cut
     * a writeback between converting its extents and raising the size. Guarded by {@link #rwsem}.
     */
    volatile boolean blocksPastEof;
    /** The record's size (i_disksize) as last saved; changed inside transactions. */
    volatile long diskSize;
    /** mtime and ctime newer than the record's (buffered writes, mapped stores), or null. */
    volatile Timespec dirtyMtime;
    volatile Timespec dirtyCtime;
    /** System.nanoTime() when the inode's first dirty folio appeared since its last writeback; 0 when none. */
    volatile long dirtiedAt;
    /** The first writeback error since the last fsync (errseq's role), or null. */
    volatile IOException writebackError;
    /** Wall-clock nanos until which relatime says a read need not update atime; 0 to check. */
    volatile long atimeQuietUntil;
    private volatile FolioMapping mapping;
    /** Readahead: where the last window ended and its size in pages (a heuristic; races are harmless). */
    volatile long readaheadNext = -1;
    volatile int readaheadWindow;

    /**
     * Recently used mappings by first logical block (ext4's extent status cache), all made at
     * {@link #extentCacheSequence}; emptied when the extent map's sequence moves. Guarded by itself.
     */
    private final java.util.TreeMap<Long, Mapping> extentCache = new java.util.TreeMap<>();
    private long extentCacheSequence = -1;
    private static final int EXTENT_CACHE_ENTRIES = 4096;

    /** Direct IOs in flight (inode_dio_begin/end); guarded by {@link #dioLock}. */
    private int dioInFlight;
    private final Object dioLock = new Object();

    LiveInode(long ino) {
        this.ino = ino;
    }

    /**
     * A cached mapping of {@code lblk} (at most {@code maxBlocks} long) made at {@code sequence},
     * the extent map's current sequence; null when none is cached.
     */
    Mapping cachedMapping(long lblk, long maxBlocks, long sequence) {
        synchronized (extentCache) {
            if (sequence != extentCacheSequence) {
                return null;
            }
            var e = extentCache.floorEntry(lblk);
            if (e == null || lblk >= e.getValue().end()) {
                return null;
            }
            Mapping m = e.getValue();
            long blocks = Math.min(maxBlocks, m.end() - lblk);
            long physical = m.physical() < 0 ? -1 : m.physical() + (lblk - m.logical());
            return new Mapping(m.type(), lblk, blocks, physical, sequence);
        }
    }

    /** Remembers a mapping just read from the extent map (under the tree lock, at its sequence). */
    void cacheMapping(Mapping m) {
        synchronized (extentCache) {
            if (m.sequence() != extentCacheSequence) {
                if (m.sequence() < extentCacheSequence) {
                    return; // made before a change the cache already follows
                }
                extentCache.clear();
                extentCacheSequence = m.sequence();
            }
            if (extentCache.size() >= EXTENT_CACHE_ENTRIES) {
                extentCache.clear();
            }
            extentCache.put(m.logical(), m);
        }
    }

    /** A direct IO starts (holding rwsem); it may end on another thread. */
    void dioBegin() {
        synchronized (dioLock) {
            dioInFlight++;
        }
    }

    void dioEnd() {
        synchronized (dioLock) {
            if (--dioInFlight == 0) {
                dioLock.notifyAll();
            }
        }
    }

    /**
     * inode_dio_wait: waits until no direct IO of this inode is in flight. Called with rwsem
     * exclusive (truncate, fallocate, eviction), so no new one can start.
     */
    void awaitDio() {
        synchronized (dioLock) {
            boolean interrupted = false;
            while (dioInFlight > 0) {
                try {
                    dioLock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    synchronized boolean unused() {
        return lookups == 0 && opens == 0;
    }

    boolean isLoaded() {
        return loaded;
    }

    /** Loads type and size from the record on first use; later calls do nothing. */
    void load(InodeRecord r) {
        if (loaded) {
            return;
        }
        synchronized (this) {
            if (!loaded) {
                type = r.type();
                size = r.size();
                diskSize = r.size();
                loaded = true;
            }
        }
    }

    boolean isRegular() {
        return type == InodeRecord.S_IFREG;
    }

    boolean isDirectory() {
        return type == InodeRecord.S_IFDIR;
    }

    /** The page-cache mapping, or null while nothing was cached. */
    FolioMapping mappingOrNull() {
        return mapping;
    }

    FolioMapping mapping(io.coherentfs.core.cache.PageCache cache) {
        FolioMapping m = mapping;
        if (m == null) {
            synchronized (this) {
                m = mapping;
                if (m == null) {
                    m = cache.newMapping(ino);
                    mapping = m;
                }
            }
        }
        return m;
    }

    /** A buffered write or mapped store changed the data at {@code t} (file_update_time). */
    void touchData(Timespec t) {
        dirtyMtime = t;
        dirtyCtime = t;
        atimeQuietUntil = 0;
    }

    /** Notes that a folio of this inode went from clean to dirty. */
    void noteDirtied() {
        if (dirtiedAt == 0) {
            dirtiedAt = Math.max(1, System.nanoTime());
        }
    }

    /** The record as stat sees it: the in-memory size, times and delayed blocks over the disk record. */
    InodeRecord overlay(InodeRecord r) {
        if (!loaded || type != InodeRecord.S_IFREG) {
            return r;
        }
        Timespec m = dirtyMtime;
        Timespec c = dirtyCtime;
        long delayed = delalloc.blocks();
        if (size == r.size() && m == null && c == null && delayed == 0) {
            return r;
        }
        InodeRecord.Builder b = r.toBuilder();
        b.size = size;
        if (m != null && m.compareTo(r.mtime()) > 0) {
            b.mtime = m;
        }
        if (c != null && c.compareTo(r.ctime()) > 0) {
            b.ctime = c;
        }
        b.blocks += delayed;
        return b.build();
    }

    /**
     * Moves the pending times into a record being saved (inside a transaction) and forgets them.
     * Returns the builder for chaining.
     */
    InodeRecord.Builder flushTimes(InodeRecord.Builder b) {
        Timespec m = dirtyMtime;
        Timespec c = dirtyCtime;
        if (m != null && m.compareTo(b.mtime) > 0) {
            b.mtime = m;
        }
        if (c != null && c.compareTo(b.ctime) > 0) {
            b.ctime = c;
        }
        if (dirtyMtime == m) {
            dirtyMtime = null;
        }
        if (dirtyCtime == c) {
            dirtyCtime = null;
        }
        return b;
    }

    @Override
    public String toString() {
        return "LiveInode[ino=" + ino + ", size=" + size + ", " + delalloc + "]";
    }
}
