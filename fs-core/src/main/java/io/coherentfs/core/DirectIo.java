package io.coherentfs.core;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.cache.Folio;
import io.coherentfs.core.cache.FolioMapping;
import io.coherentfs.core.cache.PageCache;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.extent.Mapping;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.FaultGuard;
import io.coherentfs.core.sync.FaultRecursionException;
import io.coherentfs.core.sync.FaultRetryException;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.sync.TwoStateSharedLock;
import io.coherentfs.core.sync.TwoStateSharedLock.Side;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import java.util.logging.Logger;

/**
 * Direct IO (iomap's direct-io.c in our terms) and the coherence mechanisms around it: a direct
 * write blocks page-cache adds (M3), writes back and invalidates its range before the IO, maps
 * holes as unwritten extents, moves the data between the caller's memory (or one aligned bounce
 * buffer) and the device through the IO engine, and completes: converts unwritten extents,
 * raises i_size before it invalidates (M5), invalidates the written range again (M2) without
 * ever dropping a dirty or locked folio (M6), on a {@code dio-done} worker whenever the
 * completion has such work to do and arrived on the engine's completion thread (M1).
 *
 * <h2>Locks</h2>
 * The caller holds the inode's rwsem (shared for aligned overwrites of written extents inside
 * EOF, exclusive otherwise) until the IO is submitted — and, for synchronous IO, until it
 * completed. An asynchronous write then lives on without it: {@link LiveInode#dioBegin} counts
 * it, and truncate, fallocate and eviction wait for the count to drain (inode_dio_wait). The add
 * lock's BLOCK side is held from before the pre-write invalidation until after the post-write
 * invalidation, whichever thread ends the IO; faults are disabled for this mapping on the
 * submitting thread while it reads a source that may fault ({@link FaultGuard}).
 *
 * <h2>Sources that fault</h2>
 * A write whose source is a {@link MappedFile} copies it into the bounce buffer under the
 * BLOCK lock with faults disabled. A fault on the written mapping itself is a recursion
 * ({@link FaultRecursionException}): the write drops BLOCK, copies the source with no lock held,
 * re-takes BLOCK and invalidates again. A fault on another mapping in the wrong lock order drops
 * and re-takes BLOCK inside {@link FaultGuard} and asks for a retry: the write invalidates again
 * and copies again. Both are counted.
 */
final class DirectIo implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(DirectIo.class.getName());
    /** A direct write mapped its range and is about to submit its IO. */
    static final String RACE_WRITE_BEFORE_SUBMIT = "dio-write.before-submit";
    /** A direct write's IO completed and unwritten extents are converted; size and invalidation come next. */
    static final String RACE_WRITE_COMPLETING = "dio-write.completing";
    /** Between the i_size update and the post-write invalidation (in whichever order M5 puts them). */
    static final String RACE_WRITE_BETWEEN_SIZE_AND_INVALIDATE = "dio-write.between-size-and-invalidate";
    static final int SECTOR = 512;
    private static final int BLOCK = CoherentFs.BLOCK;
    /** The most bytes one direct request moves per mapping piece (a bounce buffer's size). */
    private static final long MAX_PIECE = 8L << 20;
    /** A thread that is nobody's caller: a segment it may access is accessible from any thread. */
    private static final Thread NOT_THE_CALLER = Thread.ofPlatform().unstarted(() -> { });

    private final CoherentFs fs;
    private final FileData data;
    private final BlockDevice device;
    private final AlignedBufferPool pool;
    private final PageCache cache;
    private final Writeback writeback;
    private final RacePoints race;
    private final CoherenceConfig coherence;
    private final FaultGuard faultGuard;
    private final ExecutorService dioDone;
    private final int offsetAlign;
    private final int memoryAlign;

    final LongAdder reads = new LongAdder();
    final LongAdder writes = new LongAdder();
    final LongAdder deferredCompletions = new LongAdder();
    final LongAdder inlineCompletions = new LongAdder();
    final LongAdder foliosInvalidated = new LongAdder();
    final LongAdder foliosLaundered = new LongAdder();
    final LongAdder invalidationFailures = new LongAdder();
    final LongAdder blockWaits = new LongAdder();
    final LongAdder recursionDetections = new LongAdder();
    final LongAdder retries = new LongAdder();
    private volatile boolean warnedInvalidation;

    DirectIo(CoherentFs fs, FileData data, BlockDevice device, AlignedBufferPool pool, PageCache cache, Writeback writeback,
            RacePoints race, CoherenceConfig coherence, FaultGuard faultGuard) {
        this.fs = fs;
        this.data = data;
        this.device = device;
        this.pool = pool;
        this.cache = cache;
        this.writeback = writeback;
        this.race = race;
        this.coherence = coherence;
        this.faultGuard = faultGuard;
        this.offsetAlign = Math.max(SECTOR, device.geometry().dioOffsetAlign());
        this.memoryAlign = Math.max(SECTOR, device.geometry().dioMemoryAlign());
        AtomicInteger n = new AtomicInteger();
        this.dioDone = Executors.newFixedThreadPool(2, r -> Thread.ofPlatform().daemon()
                .name("dio-done-" + n.incrementAndGet()).unstarted(r));
    }

    // ---- checks --------------------------------------------------------------------------------

    /** EINVAL unless offset and length are multiples of 512 (and of the device's rule). */
    void checkAlignment(String call, long offset, long length, MemorySegment memory) throws ErrnoException {
        if (offset % offsetAlign != 0 || length % offsetAlign != 0) {
            throw new ErrnoException.InvalidArgumentException(call, "O_DIRECT offset " + offset + " and length "
                    + length + " must be multiples of " + offsetAlign);
        }
        if (memory != null && memory.isNative() && memory.address() % memoryAlign != 0) {
            throw new ErrnoException.InvalidArgumentException(call, "O_DIRECT buffer address 0x"
                    + Long.toHexString(memory.address()) + " must be a multiple of " + memoryAlign);
        }
    }

    /**
     * True when a write of {@code [pos, pos + length)} may run under the shared rwsem: block
     * aligned, inside EOF, and over written extents only (nothing to allocate or convert).
     */
    boolean canWriteShared(LiveInode li, long pos, long length) throws IOException {
        if (pos % BLOCK != 0 || length % BLOCK != 0 || pos + length > li.size) {
            return false;
        }
        long lblk = pos / BLOCK;
        long end = (pos + length) / BLOCK;
        while (lblk < end) {
            Mapping m = fs.mapForRead(li.ino, lblk, end - lblk);
            if (m.type() != Mapping.Type.MAPPED) {
                return false;
            }
            lblk = m.end();
        }
        return true;
    }

    private boolean usable(MemorySegment m, long offsetInSource, long length) {
        return m != null && m.isNative() && (m.address() + offsetInSource) % memoryAlign == 0
                && length % offsetAlign == 0;
    }

    // ---- read ----------------------------------------------------------------------------------

    /**
     * A direct read of up to {@code dst.byteSize()} bytes at {@code pos}, short at EOF. Dirty
     * cached data in the range is written back first, so the device is current. The caller holds
     * rwsem shared until this returns (the IO is submitted); the read is counted in flight
     * ({@link LiveInode#dioBegin}) until it completes, on the engine's completion thread, so
     * truncate cannot free its blocks under it.
     */
    CompletableFuture<Integer> read(LiveInode li, long pos, MemorySegment dst, boolean sync) throws IOException {
        reads.increment();
        long size = li.size;
        if (pos >= size) {
            return CompletableFuture.completedFuture(0);
        }
        li.dioBegin();
        try {
            CompletableFuture<Integer> f = submitRead(li, pos, dst, size, sync);
            return f.whenComplete((n, e) -> li.dioEnd());
        } catch (IOException | RuntimeException e) {
            li.dioEnd();
            throw e;
        }
    }

    /** Waits for a read's device IO on the calling thread. */
    /** Waits for {@code stage} on this thread; its failure is thrown as the IOException it carries. */
    static <T> T await(java.util.concurrent.CompletionStage<T> stage) throws IOException {
        try {
            return stage.toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for IO");
        } catch (ExecutionException e) {
            throw unwrap(e.getCause());
        }
    }

    /** {@code sync}: the device reads run on this thread and the returned stage is complete. */
    private CompletableFuture<Integer> submitRead(LiveInode li, long pos, MemorySegment dst, long size, boolean sync)
            throws IOException {
        long length = Math.min(dst.byteSize(), size - pos);
        long first = pos / BLOCK;
        long last = (pos + length + BLOCK - 1) / BLOCK;
        writeback.writeback(li, first, last);
        boolean direct = usable(dst, 0, length) && length % offsetAlign == 0;
        List<CompletableFuture<Void>> ios = new ArrayList<>();
        AlignedBuffer bounce = null;
        MemorySegment target = dst;
        long span = length;
        if (!direct) {
            span = (length + offsetAlign - 1) / offsetAlign * offsetAlign;
            bounce = pool.allocate(span);
            target = bounce.segment();
        }
        long done = 0;
        while (done < span) {
            long at = pos + done;
            long lblk = at / BLOCK;
            long inBlock = at % BLOCK;
            Mapping m = fs.mapForRead(li.ino, lblk, (inBlock + span - done + BLOCK - 1) / BLOCK);
            long n = Math.min(span - done, m.blocks() * BLOCK - inBlock);
            MemorySegment piece = target.asSlice(done, n);
            if (m.readsAsZeros()) {
                piece.fill((byte) 0);
            } else if (sync) {
                try {
                    device.read(m.physical() * BLOCK + inBlock, piece);
                } catch (IOException | RuntimeException e) {
                    if (bounce != null) {
                        bounce.close();
                    }
                    throw e;
                }
            } else {
                ios.add(device.readAsync(m.physical() * BLOCK + inBlock, piece));
            }
            done += n;
        }
        if (sync) { // every piece was read above, on this thread
            if (bounce != null) {
                try {
                    MemorySegment.copy(target, 0, dst, 0, length);
                } finally {
                    bounce.close();
                }
            }
            return CompletableFuture.completedFuture((int) length);
        }
        CompletableFuture<Void> io = CompletableFuture.allOf(ios.toArray(CompletableFuture[]::new));
        if (bounce != null && !dst.isAccessibleBy(NOT_THE_CALLER)) {
            // dst is confined to this thread (an Arena.ofConfined segment), which the completion
            // thread may not copy into: this read completes here.
            try {
                await(io);
                MemorySegment.copy(target, 0, dst, 0, length);
                return CompletableFuture.completedFuture((int) length);
            } finally {
                bounce.close();
            }
        }
        AlignedBuffer toFree = bounce;
        MemorySegment from = target;
        return io.handle((ok, error) -> {
            try {
                if (error != null) {
                    throw new java.util.concurrent.CompletionException(unwrap(error));
                }
                if (toFree != null) {
                    MemorySegment.copy(from, 0, dst, 0, length);
                }
                return (int) length;
            } finally {
                if (toFree != null) {
                    toFree.close();
                }
            }
        });
    }

    // ---- write ---------------------------------------------------------------------------------

    /** One piece of a direct write: device run {@code physical} for logical blocks from {@code lblk}. */
    private record Piece(long lblk, long blocks, long physical, boolean unwritten) {}

    /**
     * A direct write of {@code src} at {@code pos}. The caller holds rwsem ({@code exclusive} or
     * shared) and has checked alignment and limits. Returns when the IO is submitted (async) or
     * completed ({@code !async}, and always for extending or sub-block writes, as ext4 forces).
     */
    CompletableFuture<Integer> write(LiveInode li, long pos, BufferedIo.Source src, boolean dsync, boolean async)
            throws IOException {
        writes.increment();
        long length = src.size();
        long end = pos + length;
        long first = pos / BLOCK;
        long last = (end + BLOCK - 1) / BLOCK;
        boolean blockAligned = pos % BLOCK == 0 && length % BLOCK == 0;
        boolean extending = end > li.size;
        boolean waitHere = !async || extending || !blockAligned;
        FolioMapping mapping = li.mapping(cache);
        TwoStateSharedLock addLock = coherence.pagecacheAddLock() ? mapping.addLock() : null;
        li.dioBegin();
        blockAdds(addLock);
        AlignedBuffer bounce = null;
        boolean handedOff = false;
        try {
            flushAndInvalidate(li, mapping, first, last);
            MemorySegment data;
            long dataPos; // file position of data's first byte
            MemorySegment direct = src.segment();
            if (blockAligned && usable(direct, 0, length) && !src.mayFault()) {
                data = direct;
                dataPos = pos;
            } else {
                dataPos = blockAligned ? pos : first * BLOCK;
                long span = blockAligned ? length : (last - first) * BLOCK;
                bounce = pool.allocate(span);
                data = bounce.segment().asSlice(0, span);
                if (!blockAligned) {
                    readEdges(li, data, first, last, pos, end);
                }
                copySource(li, mapping, addLock, src, data, pos - dataPos, first, last);
            }
            List<Piece> pieces = mapForWrite(li, first, last);
            DioWrite w = new DioWrite(li, mapping, addLock, pos, length, extending, dsync, pieces, bounce);
            race.hit(RACE_WRITE_BEFORE_SUBMIT);
            w.submit(data, dataPos, waitHere);
            handedOff = true;
            if (waitHere) {
                w.awaitIo();
                w.complete(false);
                return CompletableFuture.completedFuture(w.result());
            }
            return w.future;
        } catch (IOException | RuntimeException e) {
            if (extending) {
                // Blocks this write allocated past EOF hold no data: give them back (the rwsem is
                // held exclusive, as for every extending write).
                try {
                    fs.freeBlocksFrom(li.ino, (li.size + BLOCK - 1) / BLOCK);
                } catch (IOException | RuntimeException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            throw e;
        } finally {
            if (!handedOff) {
                faultGuard.enable();
                unblockAdds(addLock);
                li.dioEnd();
                if (bounce != null) {
                    bounce.close();
                }
            }
        }
    }

    private void blockAdds(TwoStateSharedLock addLock) {
        if (addLock != null && !addLock.tryLock(Side.BLOCK)) {
            blockWaits.increment();
            addLock.lock(Side.BLOCK);
        }
    }

    private static void unblockAdds(TwoStateSharedLock addLock) {
        if (addLock != null) {
            addLock.unlock(Side.BLOCK);
        }
    }

    /** Sub-block write: the partial first and last blocks are read in (zeros over holes and unwritten blocks). */
    private void readEdges(LiveInode li, MemorySegment data, long first, long last, long pos, long end)
            throws IOException {
        if (pos % BLOCK != 0) {
            readBlock(li, first, data.asSlice(0, BLOCK));
        }
        if (end % BLOCK != 0 && (last - 1 != first || pos % BLOCK == 0)) {
            readBlock(li, last - 1, data.asSlice((last - 1 - first) * BLOCK, BLOCK));
        }
    }

    private void readBlock(LiveInode li, long lblk, MemorySegment dst) throws IOException {
        Mapping m = fs.mapForRead(li.ino, lblk, 1);
        if (m.readsAsZeros()) {
            dst.fill((byte) 0);
        } else {
            device.read(m.physical() * BLOCK, dst);
        }
    }

    /**
     * Copies the source into the bounce buffer. A source that may fault is read with faults
     * disabled for this mapping (M3's recursion detection); see the class header.
     */
    private void copySource(LiveInode li, FolioMapping mapping, TwoStateSharedLock addLock, BufferedIo.Source src,
            MemorySegment data, long at, long first, long last) throws IOException {
        if (!src.mayFault() || addLock == null) {
            src.copyTo(0, data, at, src.size());
            return;
        }
        while (true) {
            faultGuard.disableFaultsFor(addLock, li.ino);
            boolean dropped;
            try {
                src.copyTo(0, data, at, src.size());
                return;
            } catch (FaultRecursionException recursion) {
                // The source is a view of this very file: bring it in with no lock held, then
                // block adds again and drop whatever came into the cache meanwhile.
                recursionDetections.increment();
                faultGuard.enable();
                unblockAdds(addLock);
                try {
                    src.copyTo(0, data, at, src.size());
                } finally {
                    blockAdds(addLock);
                }
                flushAndInvalidate(li, mapping, first, last);
                return;
            } catch (FaultRetryException retry) {
                dropped = true;
            } finally {
                faultGuard.enable();
            }
            if (dropped || faultGuard.takeLocksDropped()) {
                retries.increment();
                flushAndInvalidate(li, mapping, first, last);
            }
        }
    }

    /**
     * Maps {@code [first, last)} for a direct write: written and unwritten extents as they are,
     * holes (inside or past EOF) allocated as unwritten extents, each piece in a transaction of
     * its own. ENOSPC comes before any data moves.
     */
    private List<Piece> mapForWrite(LiveInode li, long first, long last) throws IOException {
        List<Piece> pieces = new ArrayList<>();
        long lblk = first;
        while (lblk < last) {
            long at = lblk;
            Mapping m = fs.mapForRead(li.ino, at, last - at);
            if (m.type() == Mapping.Type.HOLE) {
                m = data.mapAllocatingUnwritten(li.ino, at, last - at);
            }
            long n = Math.min(m.blocks(), MAX_PIECE / BLOCK);
            pieces.add(new Piece(at, n, m.physical(), m.type() == Mapping.Type.UNWRITTEN));
            lblk = at + n;
        }
        return pieces;
    }

    /**
     * Writes back and invalidates {@code [first, last)} (the pre-write step; also after a source
     * copy that let pages in). Dirty folios are laundered, never dropped (M6).
     */
    private void flushAndInvalidate(LiveInode li, FolioMapping mapping, long first, long last) throws IOException {
        if (mapping.nrpages() == 0) {
            return;
        }
        writeback.writeback(li, first, last);
        invalidate(li, mapping, first, last);
    }

    /**
     * invalidate_inode_pages2_range: removes the cached folios of {@code [first, last)}. A locked
     * folio is waited for; a dirty one is written back first (laundered) and then removed — with
     * M6 off it is dropped dirty instead, as the buggy kernel did. A folio that cannot be removed
     * (dirtied again meanwhile) is a failure: counted, logged once, and recorded as the inode's
     * writeback error for the next fsync. Returns false on failure.
     */
    boolean invalidate(LiveInode li, FolioMapping mapping, long first, long last) throws IOException {
        boolean ok = true;
        for (long index : mapping.cachedIndices(first, last)) {
            Folio f = mapping.lock(index);
            if (f == null) {
                continue;
            }
            f.waitForWriteback();
            if (f.isDirty()) {
                if (coherence.invalidationKeepsDirty()) {
                    f.unlock();
                    writeback.writeback(li, index, index + 1); // launder
                    foliosLaundered.increment();
                    f = mapping.lock(index);
                    if (f == null) {
                        continue;
                    }
                    f.waitForWriteback();
                    if (f.isDirty()) {
                        f.unlock();
                        invalidationFailed(li, index);
                        ok = false;
                        continue;
                    }
                } else {
                    f.cancelDirty();
                }
            }
            mapping.removeLocked(f);
            foliosInvalidated.increment();
        }
        return ok;
    }

    private void invalidationFailed(LiveInode li, long index) {
        invalidationFailures.increment();
        if (li.writebackError == null) {
            li.writebackError = new ErrnoException(Errno.EIO, "direct-io", "page " + index + " of inode " + li.ino
                    + " was dirtied during a direct write and could not be invalidated");
        }
        if (!warnedInvalidation) {
            warnedInvalidation = true;
            LOG.warning("possible data corruption due to collision with buffered I/O: inode " + li.ino + " page "
                    + index + " could not be invalidated after a direct write (logged once)");
        }
    }

    /** The state of one direct write from submission to completion. */
    private final class DioWrite {
        final LiveInode li;
        final FolioMapping mapping;
        final TwoStateSharedLock addLock;
        final long pos;
        final long length;
        final boolean extending;
        final boolean dsync;
        final List<Piece> pieces;
        final AlignedBuffer bounce;
        final CompletableFuture<Integer> future = new CompletableFuture<>();
        final AtomicInteger outstanding = new AtomicInteger();
        final AtomicReference<IOException> error = new AtomicReference<>();
        final CompletableFuture<Void> ioDone = new CompletableFuture<>();
        volatile boolean sync;

        DioWrite(LiveInode li, FolioMapping mapping, TwoStateSharedLock addLock, long pos, long length,
                boolean extending, boolean dsync, List<Piece> pieces, AlignedBuffer bounce) {
            this.li = li;
            this.mapping = mapping;
            this.addLock = addLock;
            this.pos = pos;
            this.length = length;
            this.extending = extending;
            this.dsync = dsync;
            this.pieces = pieces;
            this.bounce = bounce;
        }

        void submit(MemorySegment data, long dataPos, boolean waitHere) {
            this.sync = waitHere;
            outstanding.set(pieces.size() + 1); // +1: the submitter's own, dropped after the loop
            for (Piece p : pieces) {
                MemorySegment slice = data.asSlice(p.lblk() * BLOCK - dataPos, p.blocks() * BLOCK);
                device.submitWrite(p.physical() * BLOCK, slice, e -> pieceDone(e));
            }
            pieceDone(null);
        }

        private void pieceDone(IOException e) {
            if (e != null) {
                error.compareAndSet(null, e);
            }
            if (outstanding.decrementAndGet() != 0) {
                return;
            }
            if (sync) {
                ioDone.complete(null); // the submitter completes in its own context
                return;
            }
            // Asynchronous: this runs on the engine's completion thread (or the submitter's, if
            // the IO finished first). Defer whenever completion has work that must not run here
            // (M1); inline, the invalidation is not allowed, so it is skipped.
            boolean work = mapping.nrpages() > 0 || dsync || extending || hasUnwritten();
            if (coherence.deferredCompletion() && work && error.get() == null) {
                deferredCompletions.increment();
                try {
                    dioDone.execute(() -> complete(false));
                } catch (java.util.concurrent.RejectedExecutionException closing) {
                    // the filesystem is closing under an IO in flight: finish on a thread of its own
                    Thread.ofPlatform().daemon().name("dio-done-late").start(() -> complete(false));
                }
            } else {
                inlineCompletions.increment();
                complete(true);
            }
        }

        boolean hasUnwritten() {
            for (Piece p : pieces) {
                if (p.unwritten()) {
                    return true;
                }
            }
            return false;
        }

        /** Waits for the IO, uninterruptibly (as the kernel does): completion must always run. */
        void awaitIo() {
            boolean interrupted = false;
            while (true) {
                try {
                    ioDone.get();
                    break;
                } catch (InterruptedException ie) {
                    interrupted = true;
                } catch (ExecutionException ee) {
                    break; // pieceDone never completes it exceptionally; errors are in `error`
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }

        int result() throws IOException {
            try {
                return future.get();
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted");
            } catch (ExecutionException ee) {
                throw unwrap(ee.getCause());
            }
        }

        /**
         * end_io and dio_complete: convert, size (M5 order), invalidate (M2, M6), O_DSYNC flush,
         * release. {@code onCompletionThread} means it runs where invalidation is not allowed
         * (not deferred: M1 off, or nothing seemed to need it): the invalidation is skipped, as the
         * kernel's code before seed 1 did.
         */
        void complete(boolean onCompletionThread) {
            IOException failure = error.get();
            try {
                if (failure == null) {
                    convertUnwritten();
                    race.hit(RACE_WRITE_COMPLETING);
                    boolean mayInvalidate = !onCompletionThread && coherence.postWriteInvalidation();
                    if (coherence.sizeBeforeInvalidation()) {
                        updateSize();
                        race.hit(RACE_WRITE_BETWEEN_SIZE_AND_INVALIDATE);
                        if (mayInvalidate) {
                            invalidate(li, mapping, pos / BLOCK, (pos + length + BLOCK - 1) / BLOCK);
                        }
                    } else {
                        if (mayInvalidate) {
                            invalidate(li, mapping, pos / BLOCK, (pos + length + BLOCK - 1) / BLOCK);
                        }
                        race.hit(RACE_WRITE_BETWEEN_SIZE_AND_INVALIDATE);
                        updateSize();
                    }
                    if (dsync) {
                        fs.meta().commit();
                        device.flush();
                    }
                }
            } catch (IOException | RuntimeException e) {
                failure = e instanceof IOException io ? io : new IOException(e);
            } finally {
                unblockAdds(addLock);
                li.dioEnd();
                if (bounce != null) {
                    bounce.close();
                }
            }
            if (failure == null) {
                future.complete((int) length);
            } else {
                future.completeExceptionally(failure);
            }
        }

        private void convertUnwritten() throws IOException {
            for (Piece p : pieces) {
                if (!p.unwritten()) {
                    continue;
                }
                fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                    ExtentMap map = fs.extentsForChange(op, fs.inodes(op), li.ino, false);
                    map.markWritten(p.lblk(), p.blocks());
                    fs.bumpExtentSequence(li.ino);
                    return null;
                });
            }
        }

        /** An extending write: i_size and the disk size cover it now (its data is on the device). */
        private void updateSize() throws IOException {
            long end = pos + length;
            Timespec t = Timespec.now();
            li.touchData(t);
            if (end > li.size) {
                li.size = end;
            }
            if (extending || end > li.diskSize) {
                fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                    BTree inodes = fs.inodes(op);
                    InodeRecord.Builder b = li.flushTimes(fs.load(inodes, li.ino).toBuilder());
                    long target = Math.min(li.size, Math.max(end, b.size));
                    if (target > b.size) {
                        b.size = target;
                        li.diskSize = target;
                    }
                    fs.save(inodes, li.ino, b.build());
                    return null;
                });
            }
        }
    }

    static IOException unwrap(Throwable t) {
        while ((t instanceof java.util.concurrent.CompletionException || t instanceof ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t instanceof IOException io ? io : new IOException(t);
    }

    /** Stops the dio-done workers after the work queued so far. */
    @Override
    public void close() {
        dioDone.shutdown();
        try {
            dioDone.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

}
