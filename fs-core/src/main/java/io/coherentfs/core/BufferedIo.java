package io.coherentfs.core;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.BlockAllocator;
import io.coherentfs.core.alloc.Reservation;
import io.coherentfs.core.cache.Folio;
import io.coherentfs.core.cache.FolioMapping;
import io.coherentfs.core.cache.PageCache;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.extent.Mapping;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.FaultGuard;
import io.coherentfs.core.sync.FaultRetryException;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.sync.TwoStateSharedLock.Side;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * Buffered IO through the page cache (iomap's buffered-io.c in our terms): reads that fill
 * misses with readahead, writes with delayed allocation, the page-fault paths of
 * {@link MappedFile}, and the cache side of truncate, punch and zeroing.
 *
 * <h2>Locks</h2>
 * Callers hold the inode's {@code rwsem}: shared for {@link #read}, exclusive for {@link #write}
 * and the truncate/punch helpers; the fault paths hold none. This class takes the mapping's
 * invalidate lock (exclusive in {@link #releaseDelalloc} and the truncate helpers, shared in
 * faults), the add lock's ADD side around every page-cache add and the fill that follows it
 * (mechanism M3), folio locks in ascending index order (a read-around run also takes the
 * folios below its first one, but only new ones, whose locks nobody else can hold: see
 * {@link FolioMapping#createIfAbsent}), and the tree lock
 * (through {@code CoherentFs.look}) under a folio lock, never the other way round.
 *
 * <h2>Delayed allocation</h2>
 * A write over a hole reserves one block per page from the filesystem's delalloc reservation and
 * records the page's block in the inode's {@link DelallocRanges} (XFS's delalloc extents) before
 * it copies; the check and the reservation happen under the tree lock and the set's monitor, so
 * they are atomic with writeback's conversion, which runs under the exclusive tree lock. ENOSPC
 * therefore comes from {@code write()}, never from writeback. A write that fails or comes up short
 * gives back what it did not use with {@link #releaseDelalloc} (mechanism M4).
 *
 * <h2>Invariants</h2>
 * Bytes of a cached folio past i_size are zero; a delalloc block always has a dirty folio (or is
 * under writeback); a dirty folio over a hole always has a delalloc block.
 */
final class BufferedIo {
    /** A buffered write reserved delayed allocation for its chunk and is about to copy into the cache. */
    static final String RACE_WRITE_AFTER_RESERVE = "buffered-write.after-reserve";
    /** A short or failed buffered write is about to release its unused delalloc reservation (M4). */
    static final String RACE_BEFORE_DELALLOC_RELEASE = "buffered-write.before-delalloc-release";

    private static final int PAGE = Folio.PAGE_SIZE;
    private static final int SHIFT = Folio.PAGE_SHIFT;
    /** Pages one write step maps and reserves at most (one iomap iteration). */
    static final int WRITE_CHUNK_PAGES = 256;
    static final int READAHEAD_MIN_PAGES = 4;
    static final int READAHEAD_MAX_PAGES = 256;
    /** The cluster a random miss reads around while the cache has room (128 KiB). */
    static final int READ_AROUND_PAGES = 32;

    /** Where a buffered write's bytes come from. */
    interface Source {
        long size();

        /** Copies {@code n} bytes at {@code from} into {@code dst}; may fail (a fault in a mapped source). */
        void copyTo(long from, MemorySegment dst, long dstOffset, long n) throws IOException;

        /** True when reading the source may fault: it is copied through a bounce page with no folio locked. */
        boolean mayFault();

        /** The source as one memory segment, when it is one (direct IO may use it in place); else null. */
        default MemorySegment segment() {
            return null;
        }

        static Source of(MemorySegment segment) {
            return new Source() {
                @Override
                public long size() {
                    return segment.byteSize();
                }

                @Override
                public void copyTo(long from, MemorySegment dst, long dstOffset, long n) {
                    MemorySegment.copy(segment, from, dst, dstOffset, n);
                }

                @Override
                public boolean mayFault() {
                    return false;
                }

                @Override
                public MemorySegment segment() {
                    return segment;
                }
            };
        }
    }

    private final CoherentFs fs;
    private final PageCache cache;
    private final FolioIo io;
    private final RacePoints race;
    private final CoherenceConfig coherence;
    private final BlockAllocator allocator;
    /** Every delalloc block of every inode is one block of this reservation. */
    private final Reservation delallocReservation;
    /**
     * One block per inode that holds delayed blocks (LiveInode.metaReserved): what its first
     * writeback may need for the extent tree's root or a split, so writeback never runs out of
     * metadata space on a full filesystem. Given back (into the emergency reserve that writeback
     * draws on) when the inode's delayed set empties.
     */
    private final Reservation metaReservation;
    private final FaultGuard faultGuard;
    final LongAdder hits = new LongAdder();
    final LongAdder misses = new LongAdder();
    final LongAdder readaheadPages = new LongAdder();
    final LongAdder delallocReleased = new LongAdder();

    BufferedIo(CoherentFs fs, PageCache cache, FolioIo io, RacePoints race, CoherenceConfig coherence,
            BlockAllocator allocator, Reservation delallocReservation, FaultGuard faultGuard)
            throws ErrnoException.NoSpaceException {
        this.fs = fs;
        this.cache = cache;
        this.io = io;
        this.race = race;
        this.coherence = coherence;
        this.allocator = allocator;
        this.delallocReservation = delallocReservation;
        this.faultGuard = faultGuard;
        this.metaReservation = allocator.reserve(0);
    }

    /** The ADD side of the mapping's add lock (M3), unless M3 is off. */
    private void lockAdd(FolioMapping m) {
        if (coherence.pagecacheAddLock()) {
            m.addLock().lock(Side.ADD);
        }
    }

    private void unlockAdd(FolioMapping m) {
        if (coherence.pagecacheAddLock()) {
            m.addLock().unlock(Side.ADD);
        }
    }

    PageCache cache() {
        return cache;
    }

    Reservation delallocReservation() {
        return delallocReservation;
    }

    // ---- read ----------------------------------------------------------------------------------

    /** Reads up to {@code dst.byteSize()} bytes at {@code offset}, never past i_size. Holds rwsem shared. */
    int read(LiveInode li, long offset, MemorySegment dst) throws IOException {
        long size = li.size;
        if (offset >= size) {
            return 0;
        }
        long length = Math.min(dst.byteSize(), size - offset);
        FolioMapping m = li.mapping(cache);
        long lastIndex = (offset + length - 1) >>> SHIFT;
        long done = 0;
        while (done < length) {
            long pos = offset + done;
            long index = pos >>> SHIFT;
            int inPage = (int) (pos & (PAGE - 1));
            int n = (int) Math.min(PAGE - inPage, length - done);
            Folio f = m.lock(index);
            if (f != null && !f.isUptodate()) {
                f.unlock(); // a fill that failed left it behind: fill it again under ADD
                f = null;
            }
            if (f == null) {
                misses.increment();
                f = readMiss(li, m, index, lastIndex);
            } else {
                hits.increment();
            }
            try {
                MemorySegment.copy(f.data(), inPage, dst, done, n);
            } finally {
                f.unlock();
            }
            done += n;
        }
        return (int) length;
    }

    /**
     * A read missed at {@code index}: adds and fills a readahead window of folios starting there
     * and returns the folio at {@code index}, locked and uptodate. The window doubles while misses
     * come in sequence (at the end of the previous window) and starts small otherwise.
     *
     * <p>A miss out of sequence while the cache is less than half full also reads around: the
     * absent pages of its {@link #READ_AROUND_PAGES}-aligned cluster before {@code index} join the
     * run. One larger read costs about what a 4 KiB one does on flash, and pages that would
     * otherwise each cost a device read later arrive with it; with the cache half full the
     * pages could push out others, so random reads then read only what they need (as Linux's
     * fault-around, which maps around a fault only from pages it has). Behind FUSE this matters
     * most: the kernel caches what it reads, but every first touch of a page is a round trip to
     * here, and random reads of a file cached nowhere else would each wait for the device.
     */
    /** The cache is under half full: read-around may add pages without pushing others out. */
    boolean readAroundWelcome() {
        return cache.totalBytes() < cache.budgetBytes() / 2;
    }

    private Folio readMiss(LiveInode li, FolioMapping m, long index, long lastIndexWanted) throws IOException {
        // The readahead state is a heuristic: racing readers may overwrite each other's; harmless.
        boolean sequential = index == li.readaheadNext;
        int window = sequential ? Math.min(li.readaheadWindow * 2, READAHEAD_MAX_PAGES) : READAHEAD_MIN_PAGES;
        long from = index;
        if (!sequential && readAroundWelcome()) {
            long cluster = index & -READ_AROUND_PAGES;
            window = Math.max(window, (int) (cluster + READ_AROUND_PAGES - index));
            from = cluster;
        }
        window = (int) Math.min(READAHEAD_MAX_PAGES, Math.max(window, lastIndexWanted - index + 1));
        long eofPages = (li.size + PAGE - 1) >>> SHIFT;
        window = (int) Math.max(1, Math.min(window, eofPages - index));
        li.readaheadNext = index + window;
        li.readaheadWindow = window;
        List<Folio> fresh = new ArrayList<>(window + (int) (index - from));
        Folio first;
        lockAdd(m);
        try {
            first = m.getOrCreate(index);
            if (first.isUptodate()) {
                return first; // another reader filled it meanwhile
            }
            // Read-around: absent pages just before index, nearest first, until one is present.
            // Created without waiting (we hold a higher folio's lock), then in index order.
            for (long i = index - 1; i >= from; i--) {
                Folio f = m.createIfAbsent(i);
                if (f == null) {
                    break;
                }
                fresh.add(f);
            }
            java.util.Collections.reverse(fresh);
            fresh.add(first);
            for (int i = 1; i < window; i++) {
                if (m.get(index + i) != null) {
                    break;
                }
                Folio f = m.getOrCreate(index + i);
                if (f.isUptodate()) {
                    f.unlock();
                    break;
                }
                fresh.add(f);
            }
            fill(li, fresh);
        } finally {
            unlockAdd(m);
        }
        readaheadPages.add(fresh.size() - 1);
        for (Folio f : fresh) {
            if (f != first) {
                f.unlock();
            }
        }
        return first;
    }

    /**
     * Fills locked, not-uptodate folios of consecutive indices from the device (holes, unwritten
     * and delayed blocks read as zeros), zeroes whatever lies past i_size and marks them
     * uptodate. On failure unlocks them all (not uptodate) and throws; on success they stay locked.
     */
    void fill(LiveInode li, List<Folio> folios) throws IOException {
        try {
            long first = folios.getFirst().index();
            int i = 0;
            while (i < folios.size()) {
                Mapping mp = fs.mapForRead(li.ino, first + i, folios.size() - i);
                int n = (int) mp.blocks();
                List<Folio> run = folios.subList(i, i + n);
                if (mp.readsAsZeros() || li.delalloc.contains(first + i)) {
                    for (Folio f : run) {
                        f.data().fill((byte) 0);
                    }
                } else {
                    io.read(mp.physical(), run);
                }
                i += n;
            }
            long size = li.size;
            for (Folio f : folios) {
                long pageStart = f.position();
                if (pageStart + PAGE > size) {
                    long from = Math.max(0, size - pageStart);
                    f.data().asSlice(from).fill((byte) 0);
                }
                f.markUptodate();
            }
        } catch (IOException | RuntimeException e) {
            for (Folio f : folios) {
                f.unlock();
            }
            throw e;
        }
    }

    // ---- write ---------------------------------------------------------------------------------

    /**
     * Writes {@code src} at {@code pos} into the cache. Returns the bytes written: all of them,
     * or fewer when space ran out or the source faulted after some progress; with no progress the
     * error is thrown. Holds rwsem exclusive.
     */
    long write(LiveInode li, long pos, Source src) throws IOException {
        long length = src.size();
        FolioMapping m = li.mapping(cache);
        long oldSize = li.size;
        if (pos > oldSize) {
            zeroAfterEof(li, oldSize); // the gap must read as zeros
        }
        long done = 0;
        try (Arena arena = src.mayFault() ? Arena.ofConfined() : null) {
            MemorySegment bounce = arena == null ? null : arena.allocate(PAGE, PAGE);
            while (done < length) {
                fs.writeback().throttle(li);
                long at = pos + done;
                long chunkEnd = Math.min(pos + length, ((at >>> SHIFT) + WRITE_CHUNK_PAGES) << SHIFT);
                long firstBlock = at >>> SHIFT;
                long endBlock = (chunkEnd + PAGE - 1) >>> SHIFT;
                long reservedEnd = reserve(li, firstBlock, endBlock);
                chunkEnd = Math.min(chunkEnd, reservedEnd << SHIFT);
                long[] copied = {0};
                try {
                    race.hit(RACE_WRITE_AFTER_RESERVE);
                    copyIn(li, m, at, chunkEnd - at, src, done, bounce, copied);
                } finally {
                    if (copied[0] < chunkEnd - at) {
                        releaseDelalloc(li, at + copied[0], reservedEnd << SHIFT);
                    }
                    done += copied[0];
                    if (copied[0] > 0) {
                        li.touchData(Timespec.now());
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            if (done == 0) {
                throw e;
            }
        }
        return done;
    }

    /**
     * Copies one chunk into folios page by page, counting the bytes copied in {@code copied[0]}
     * as it goes (so a failure part way leaves the progress there).
     */
    private void copyIn(LiveInode li, FolioMapping m, long at, long length, Source src, long srcOffset,
            MemorySegment bounce, long[] copied) throws IOException {
        while (copied[0] < length) {
            long p = at + copied[0];
            long index = p >>> SHIFT;
            int inPage = (int) (p & (PAGE - 1));
            int n = (int) Math.min(PAGE - inPage, length - copied[0]);
            if (bounce != null) {
                // Fault the source in with no folio locked: it may be a view of this very file.
                src.copyTo(srcOffset + copied[0], bounce, 0, n);
            }
            Folio f = lockForWrite(li, m, index, inPage != 0 || n != PAGE);
            try {
                if (bounce != null) {
                    MemorySegment.copy(bounce, 0, f.data(), inPage, n);
                } else {
                    src.copyTo(srcOffset + copied[0], f.data(), inPage, n);
                }
                if (!f.isUptodate()) {
                    f.markUptodate();
                }
                if (f.markDirty()) {
                    li.noteDirtied();
                }
                if (p + n > li.size) {
                    li.size = p + n; // write_end: i_size grows under the folio lock
                }
            } finally {
                f.unlock();
            }
            copied[0] += n;
        }
    }

    /**
     * write_begin: the folio at {@code index}, locked; read in first when the write covers it
     * only partly. Adds under the add lock's ADD side.
     */
    private Folio lockForWrite(LiveInode li, FolioMapping m, long index, boolean partial) throws IOException {
        Folio f = m.lock(index);
        if (f != null && f.isUptodate()) {
            return f;
        }
        if (f != null) {
            f.unlock(); // the add lock (tier 3) comes before a folio lock (tier 4)
            f = null;
        }
        lockAdd(m);
        try {
            if (f == null) {
                f = m.getOrCreate(index);
            }
            if (!f.isUptodate() && partial) {
                fill(li, List.of(f));
            }
            return f;
        } finally {
            unlockAdd(m);
        }
    }

    /**
     * The folio at {@code index}, locked and uptodate: the cached one, or one added and filled
     * under the ADD side ({@code fault}: through the fault guard, M3's recursion detection).
     */
    private Folio lockFilled(LiveInode li, FolioMapping m, long index, boolean fault) throws IOException {
        Folio f = m.lock(index);
        if (f != null && f.isUptodate()) {
            return f;
        }
        if (f != null) {
            f.unlock(); // the add lock (tier 3) comes before a folio lock (tier 4)
        }
        if (fault) {
            faultLockAdd(li, m);
        } else {
            lockAdd(m);
        }
        try {
            f = m.getOrCreate(index);
            if (!f.isUptodate()) {
                fill(li, List.of(f));
            }
            return f;
        } finally {
            unlockAdd(m);
        }
    }

    /**
     * Reserves delayed allocation for the holes among blocks {@code [first, end)} that are not
     * delayed yet. Returns the end of the range covered: {@code end}, or less when space ran out
     * part way. Throws ENOSPC when not even block {@code first} could be covered.
     */
    long reserve(LiveInode li, long first, long end) throws IOException {
        try {
            return reserveOnce(li, first, end);
        } catch (ErrnoException.NoSpaceException e) {
            if (!fs.retryAfterCheckpoint()) {
                throw e;
            }
            return reserveOnce(li, first, end);
        }
    }

    private long reserveOnce(LiveInode li, long first, long end) throws IOException {
        return fs.look(store -> {
            ExtentMap map = fs.extentsForLook(store, li.ino);
            DelallocRanges delalloc = li.delalloc;
            synchronized (delalloc) {
                List<long[]> need = new ArrayList<>();
                long count = 0;
                long b = first;
                while (b < end) {
                    ExtentMap.Extent e = map == null ? null : map.find(b);
                    if (e != null) {
                        b = Math.min(end, e.end());
                        continue;
                    }
                    ExtentMap.Extent next = map == null ? null : map.next(b);
                    long holeEnd = next == null ? end : Math.min(end, next.logical());
                    while (b < holeEnd) {
                        if (delalloc.contains(b)) {
                            b = Math.min(holeEnd, delalloc.runEnd(b));
                            continue;
                        }
                        long d = delalloc.next(b);
                        long segEnd = d < 0 || d >= holeEnd ? holeEnd : d;
                        need.add(new long[] {b, segEnd});
                        count += segEnd - b;
                        b = segEnd;
                    }
                }
                if (count == 0) {
                    return end;
                }
                long covered = end;
                long meta = li.metaReserved ? 0 : 1;
                try {
                    allocator.extend(delallocReservation, count);
                    try {
                        allocator.extend(metaReservation, meta);
                    } catch (ErrnoException.NoSpaceException noMeta) {
                        allocator.release(delallocReservation, count);
                        throw noMeta;
                    }
                } catch (ErrnoException.NoSpaceException full) {
                    // Cover what fits: the needed blocks up to the first one there is no room for.
                    long room = Math.max(0, allocator.statfs().availableBlocks() - meta);
                    List<long[]> fit = new ArrayList<>();
                    long left = room;
                    for (long[] r : need) {
                        long take = Math.min(left, r[1] - r[0]);
                        if (take > 0) {
                            fit.add(new long[] {r[0], r[0] + take});
                        }
                        left -= take;
                        if (take < r[1] - r[0]) {
                            covered = r[0] + take;
                            break;
                        }
                    }
                    if (covered <= first) {
                        throw full;
                    }
                    allocator.extend(delallocReservation, room - left);
                    try {
                        allocator.extend(metaReservation, meta);
                    } catch (ErrnoException.NoSpaceException raced) {
                        allocator.release(delallocReservation, room - left);
                        throw raced;
                    }
                    need = fit;
                }
                li.metaReserved = true;
                for (long[] r : need) {
                    delalloc.add(r[0], r[1]);
                }
                return covered;
            }
        });
    }

    /**
     * Gives back the delalloc reservation of {@code [startByte, endByte)} that a short or failed
     * write did not use (mechanism M4, after iomap_write_delalloc_release): under the invalidate
     * lock, walk the cached data below i_size with seekData/seekHole and keep the delalloc blocks
     * under dirty folios — a mapped store may have dirtied them meanwhile, and they are its
     * reservation now; punch everything else, and everything from EOF on.
     *
     * <p>With M4 off ({@code unsafe_no_delalloc_punch_keeps_dirty}) this does what the kernel did
     * before the fix: truncate the page cache over the range and punch all of it.
     */
    void releaseDelalloc(LiveInode li, long startByte, long endByte) throws IOException {
        long start = (startByte + PAGE - 1) >>> SHIFT;
        long end = (endByte + PAGE - 1) >>> SHIFT;
        if (start >= end) {
            return;
        }
        FolioMapping m = li.mapping(cache);
        m.invalidateLock().writeLock().lock();
        try {
            race.hit(RACE_BEFORE_DELALLOC_RELEASE);
            if (!coherence.delallocPunchKeepsDirty()) {
                m.truncate(start, end);
                punchDelalloc(li, start, end);
                return;
            }
            long scanEnd = Math.min(end, (li.size + PAGE - 1) >>> SHIFT);
            long punchStart = start;
            long index = start;
            while (index < scanEnd) {
                long data = m.seekData(index);
                if (data < 0 || data >= scanEnd) {
                    break;
                }
                long hole = Math.min(m.seekHole(data), scanEnd);
                for (long i = data; i < hole; i++) {
                    Folio f = m.lock(i);
                    if (f == null) {
                        continue;
                    }
                    try {
                        if (f.isDirty() || f.isWriteback()) {
                            if (i > punchStart) {
                                punchDelalloc(li, punchStart, i);
                            }
                            punchStart = i + 1;
                        }
                    } finally {
                        f.unlock();
                    }
                }
                index = hole;
            }
            if (punchStart < end) {
                punchDelalloc(li, punchStart, end);
            }
        } finally {
            m.invalidateLock().writeLock().unlock();
        }
    }

    /** Removes blocks {@code [start, end)} from the inode's delalloc set and gives back their reservation. */
    void punchDelalloc(LiveInode li, long start, long end) throws IOException {
        fs.look(store -> {
            long n = li.delalloc.remove(start, end);
            if (n > 0) {
                allocator.release(delallocReservation, n);
                delallocReleased.add(n);
            }
            return null;
        });
        releaseMetaIfIdle(li);
    }

    /** Gives back the inode's metadata block once it holds no delayed blocks (see {@link #metaReservation}). */
    void releaseMetaIfIdle(LiveInode li) {
        boolean released = false;
        synchronized (li.delalloc) {
            if (li.metaReserved && li.delalloc.blocks() == 0) {
                li.metaReserved = false;
                allocator.release(metaReservation, 1);
                released = true;
            }
        }
        if (released) {
            fs.meta().topUpEmergency();
        }
    }

    // ---- zeroing and truncation ------------------------------------------------------------------

    /** Zeroes from {@code size} to the end of its page, so that extending the file shows zeros there. */
    void zeroAfterEof(LiveInode li, long size) throws IOException {
        int inPage = (int) (size & (PAGE - 1));
        if (inPage != 0) {
            zeroInPage(li, size, PAGE - inPage);
        }
    }

    /**
     * Zeroes {@code [pos, pos + length)} inside one page through the cache. A page whose block
     * holds data on disk is read in, zeroed and dirtied; a cached page over a hole or unwritten
     * block is zeroed in memory only (the disk reads as zeros there already).
     */
    void zeroInPage(LiveInode li, long pos, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        long index = pos >>> SHIFT;
        FolioMapping m = li.mapping(cache);
        Mapping mp = fs.mapForRead(li.ino, index, 1);
        boolean onDisk = mp.type() == Mapping.Type.MAPPED;
        boolean delayed = li.delalloc.contains(index);
        if (m.get(index) == null && !onDisk) {
            return; // nothing cached, nothing on disk: it reads as zeros already
        }
        Folio f = lockFilled(li, m, index, false);
        try {
            f.data().asSlice(pos & (PAGE - 1), length).fill((byte) 0);
            if ((onDisk || delayed || f.isDirty()) && f.markDirty()) {
                li.noteDirtied();
            }
        } finally {
            f.unlock();
        }
    }

    /**
     * Drops the cached pages and delayed allocations from page {@code fromIndex} to
     * {@code toIndex} (truncate_pagecache_range plus the delalloc punch). Takes the invalidate
     * lock exclusive; the caller holds rwsem exclusive.
     */
    void dropRange(LiveInode li, long fromIndex, long toIndex) throws IOException {
        FolioMapping m = li.mappingOrNull();
        if (m != null) {
            m.invalidateLock().writeLock().lock();
            try {
                m.truncate(fromIndex, toIndex);
            } finally {
                m.invalidateLock().writeLock().unlock();
            }
        }
        punchDelalloc(li, fromIndex, toIndex);
    }

    // ---- faults (MappedFile) -------------------------------------------------------------------

    /**
     * The fault path's ADD: through {@link FaultGuard}, so that a fault under a direct write that
     * blocks adds fails instead of deadlocking (M3's recursion detection).
     */
    private void faultLockAdd(LiveInode li, FolioMapping m) throws IOException {
        if (!coherence.pagecacheAddLock()) {
            return;
        }
        if (faultGuard.faultLock(m.addLock(), li.ino) == FaultGuard.Outcome.RETRY) {
            throw new FaultRetryException(li.ino);
        }
    }

    /**
     * A page fault at {@code index}: the folio, locked and uptodate, added and filled under the
     * invalidate lock (shared) and the ADD side. For a write fault (page_mkwrite) the page's
     * block gets its delalloc reservation when it is a hole; the caller stores, dirties and unlocks.
     */
    Folio fault(LiveInode li, long index, boolean write) throws IOException {
        FolioMapping m = li.mapping(cache);
        m.invalidateLock().readLock().lock();
        try {
            if ((long) index << SHIFT >= li.size) {
                throw new ErrnoException(Errno.EFAULT, "fault",
                        "page " + index + " lies past the end of inode " + li.ino + " (SIGBUS)");
            }
            Folio f = lockFilled(li, m, index, true);
            if (write && !f.isDirty()) {
                try {
                    reserve(li, index, index + 1);
                } catch (IOException | RuntimeException e) {
                    f.unlock();
                    throw e;
                }
            }
            return f;
        } finally {
            m.invalidateLock().readLock().unlock();
        }
    }
}
