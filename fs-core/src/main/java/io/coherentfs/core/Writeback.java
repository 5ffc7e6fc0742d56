package io.coherentfs.core;

import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.alloc.Reservation;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.cache.Folio;
import io.coherentfs.core.cache.FolioMapping;
import io.coherentfs.core.cache.PageCache;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.sync.RacePoints;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Writeback: moves dirty folios to the device, choosing real blocks for delayed allocations, and
 * the flusher thread that does it in the background.
 *
 * <h2>One pass over an inode ({@link #writeback})</h2>
 * Under the inode's {@code writebackLock} (one pass per inode at a time), the dirty folios of the
 * range are taken in runs of consecutive pages (at most {@value #RUN_PAGES}). Each run's folios
 * are locked in index order, classified against the extent map and the delalloc set (under the
 * tree lock), switched to writeback ({@code startWriteback} clears dirty) and unlocked; then,
 * with no folio locked:
 * <ul>
 *   <li>written extents are overwritten in place;
 *   <li>delalloc runs get blocks in large contiguous pieces, each in its own transaction that
 *       inserts it as an <em>unwritten</em> extent and takes its blocks from the delalloc
 *       reservation; the folios are written straight from their memory; a second transaction
 *       marks the extent written (XFS's and ext4's unwritten-conversion scheme). So no transaction ever points at blocks holding stale data (ordered data), the
 *       tree lock is never held across data IO, and a failed write leaves an unwritten extent
 *       that reads as zeros, not a journal abort;
 *   <li>unwritten extents (fallocate) are written and converted the same way.
 * </ul>
 * Folios stay under writeback until their IO and conversion end, so truncate and punch (which
 * wait for writeback) cannot free blocks under a run in flight. A whole-file pass ends by raising
 * the disk size to the i_size it began with, in one transaction, so a crash shows a size the file
 * really had, never a run-by-run prefix. An IO error ends the run's
 * writeback with the folios clean, as Linux does, and is kept in the inode for the next fsync.
 *
 * <h2>The flusher</h2>
 * A daemon thread wakes every second, or when kicked: it writes back every inode whose oldest
 * dirty data is older than {@link #EXPIRE_NANOS}, and every dirty inode while the cache's dirty
 * bytes exceed the background threshold. Writers call {@link #throttle} before each chunk:
 * above the dirty limit a writer first writes back its own inode, then waits for the flusher
 * (balance_dirty_pages).
 */
final class Writeback implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Writeback.class.getName());
    /** A run was switched to writeback and is about to reach the device. */
    static final String RACE_RUN_SUBMITTING = "writeback.run-submitting";
    static final int RUN_PAGES = 256;
    static final long EXPIRE_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final long PERIOD_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final int PAGE = Folio.PAGE_SIZE;

    private final CoherentFs fs;
    private final PageCache cache;
    private final FolioIo io;
    private final Reservation delallocReservation;
    private final RacePoints race;
    /** Dirty plus writeback bytes above which writers are throttled. */
    final long dirtyLimit;
    /** Dirty bytes above which the flusher writes back whatever is dirty. */
    final long backgroundLimit;
    final LongAdder pagesWritten = new LongAdder();
    final LongAdder runsWritten = new LongAdder();
    final LongAdder blocksAllocated = new LongAdder();
    final LongAdder throttled = new LongAdder();

    private final ReentrantLock flusherLock = new ReentrantLock();
    private final Condition kicked = flusherLock.newCondition();
    private final Condition progressed = flusherLock.newCondition();
    private boolean kick;
    private volatile boolean stopping;
    private Thread flusher;

    Writeback(CoherentFs fs, PageCache cache, FolioIo io, Reservation delallocReservation, RacePoints race) {
        this.fs = fs;
        this.cache = cache;
        this.io = io;
        this.delallocReservation = delallocReservation;
        this.race = race;
        this.dirtyLimit = Math.max(cache.budgetBytes() / 4, 64L * PAGE);
        this.backgroundLimit = dirtyLimit / 2;
    }

    /** Starts the flusher thread (once; a remount,rw after a read-only open starts it late). */
    synchronized void start() {
        if (flusher != null) {
            return;
        }
        flusher = Thread.ofPlatform().daemon().name("coherentfs-flusher").start(this::flushLoop);
    }

    // ---- one inode -----------------------------------------------------------------------------

    /** Writes back every dirty folio of {@code li} and folds its pending times into its record. */
    void writebackInode(LiveInode li) throws IOException {
        writeback(li, 0, Long.MAX_VALUE);
        if (li.dirtyMtime != null || li.dirtyCtime != null) {
            fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                BTree inodes = fs.inodes(op);
                fs.save(inodes, li.ino, li.flushTimes(fs.load(inodes, li.ino).toBuilder()).build());
                return null;
            });
        }
        IOException e = li.writebackError;
        if (e != null) {
            throw e;
        }
    }

    /**
     * Writes back the dirty folios of {@code li} with index in {@code [fromIndex, toIndex)} and
     * waits for them: on return every folio that was dirty when it was called is on the device
     * (or its error was recorded and thrown).
     */
    void writeback(LiveInode li, long fromIndex, long toIndex) throws IOException {
        FolioMapping m = li.mappingOrNull();
        if (m == null || (m.nrpages() == 0 && li.size <= li.diskSize)) {
            return; // nothing cached, nothing to raise (direct reads call this on every request)
        }
        li.writebackLock.lock();
        try {
            boolean wholeFile = fromIndex == 0 && toIndex == Long.MAX_VALUE;
            long sizeAtStart = li.size;
            if (wholeFile) {
                li.dirtiedAt = 0; // dirtied again from here on: markDirty sets it anew
            }
            List<Folio> dirty = m.dirtyRange(fromIndex, toIndex);
            List<Folio> batch = new ArrayList<>(RUN_PAGES);
            for (Folio f : dirty) {
                if (!batch.isEmpty() && (f.index() != batch.getLast().index() + 1 || batch.size() == RUN_PAGES)) {
                    lockAndWrite(li, batch);
                    batch.clear();
                }
                batch.add(f);
            }
            if (!batch.isEmpty()) {
                lockAndWrite(li, batch);
            }
            if (wholeFile) {
                // Everything below the size the file had when the pass began is on the device now:
                // the disk size may cover it, in one step, so that after a crash the file has a
                // size it really had. (Runs do not raise it one by one.)
                raiseDiskSize(li, sizeAtStart);
            }
        } finally {
            li.writebackLock.unlock();
        }
    }

    /** Locks the still-dirty folios of a candidate run in index order and writes them in consecutive runs. */
    private void lockAndWrite(LiveInode li, List<Folio> candidates) throws IOException {
        List<Folio> run = new ArrayList<>(candidates.size());
        for (Folio f : candidates) {
            f.lock();
            if (f.isRemoved() || !f.isDirty() || (!run.isEmpty() && f.index() != run.getLast().index() + 1)) {
                f.unlock();
                if (!run.isEmpty()) {
                    writeRun(li, run);
                    run = new ArrayList<>();
                }
                continue;
            }
            f.waitForWriteback();
            run.add(f);
        }
        if (!run.isEmpty()) {
            writeRun(li, run);
        }
    }

    /** What the device holds under a piece of a run. */
    private enum Kind { WRITTEN, UNWRITTEN, DELAYED, HOLE }

    private record Piece(Kind kind, int from, int to, long physical) {}

    /** Writes a run of locked, dirty folios of consecutive indices; unlocks them. */
    private void writeRun(LiveInode li, List<Folio> run) throws IOException {
        long size = li.size;
        List<Folio> live = new ArrayList<>(run.size());
        for (Folio f : run) {
            if (f.position() >= size) {
                f.cancelDirty(); // wholly past EOF: nothing of it will ever be read
                f.unlock();
            } else {
                live.add(f);
            }
        }
        if (live.isEmpty()) {
            return;
        }
        List<Piece> pieces;
        try {
            pieces = classify(li, live);
        } catch (IOException | RuntimeException e) {
            live.forEach(Folio::unlock);
            throw e;
        }
        for (Folio f : live) {
            f.startWriteback();
            f.unlock();
        }
        race.hit(RACE_RUN_SUBMITTING);
        try {
            for (Piece p : pieces) {
                writePiece(li, live, p);
            }
            pagesWritten.add(live.size());
            runsWritten.increment();
        } catch (IOException | RuntimeException e) {
            if (e instanceof IOException io && li.writebackError == null) {
                li.writebackError = io;
            }
            throw e;
        } finally {
            for (Folio f : live) {
                f.endWriteback();
            }
        }
    }

    /** Splits a run by what the device holds under each page, under the tree lock. */
    private List<Piece> classify(LiveInode li, List<Folio> run) throws IOException {
        long first = run.getFirst().index();
        return fs.look(store -> {
            ExtentMap map = fs.extentsForLook(store, li.ino);
            List<Piece> out = new ArrayList<>();
            int i = 0;
            while (i < run.size()) {
                long b = first + i;
                ExtentMap.Extent e = map == null ? null : map.find(b);
                if (e != null) {
                    int n = (int) Math.min(run.size() - i, e.end() - b);
                    out.add(new Piece(e.unwritten() ? Kind.UNWRITTEN : Kind.WRITTEN, i, i + n,
                            e.physical() + (b - e.logical())));
                    i += n;
                    continue;
                }
                ExtentMap.Extent next = map == null ? null : map.next(b);
                long holeEnd = next == null ? first + run.size() : Math.min(first + run.size(), next.logical());
                boolean delayed = li.delalloc.contains(b);
                long end = delayed ? Math.min(holeEnd, li.delalloc.runEnd(b)) : holeEnd;
                if (!delayed) {
                    long d = li.delalloc.next(b);
                    if (d >= 0 && d < end) {
                        end = d;
                    }
                }
                int n = (int) (end - b);
                out.add(new Piece(delayed ? Kind.DELAYED : Kind.HOLE, i, i + n, -1));
                i += n;
            }
            return out;
        });
    }

    private void writePiece(LiveInode li, List<Folio> run, Piece p) throws IOException {
        long firstBlock = run.get(p.from()).index();
        switch (p.kind()) {
            case WRITTEN -> {
                io.write(p.physical(), run.subList(p.from(), p.to()));
            }
            case UNWRITTEN -> {
                io.write(p.physical(), run.subList(p.from(), p.to()));
                convert(li, firstBlock, p.to() - p.from());
            }
            case DELAYED, HOLE -> {
                int k = p.from();
                while (k < p.to()) {
                    long lblk = run.get(k).index();
                    Extent got = allocateUnwritten(li, lblk, p.to() - k, p.kind() == Kind.DELAYED);
                    int n = (int) got.length();
                    io.write(got.start(), run.subList(k, k + n));
                    convert(li, lblk, n);
                    k += n;
                }
            }
        }
    }

    /**
     * Chooses blocks for up to {@code want} pages from logical block {@code lblk}, near the block
     * before it, and inserts them as an unwritten extent. Delayed blocks draw on the delalloc
     * reservation and leave the inode's delalloc set in the same transaction (under the tree
     * lock, so a racing write's reservation check sees one or the other).
     */
    private Extent allocateUnwritten(LiveInode li, long lblk, long want, boolean delayed) throws IOException {
        Extent got = fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = fs.inodes(op);
            ExtentMap map = fs.extentsForChange(op, inodes, li.ino, false);
            ExtentMap.Extent before = map == null || lblk == 0 ? null : map.find(lblk - 1);
            long goal = before == null ? 0 : before.physical() + (lblk - before.logical());
            Extent e = op.allocateData(delayed ? delallocReservation : null, goal, want);
            if (delayed) {
                long removed = li.delalloc.remove(lblk, lblk + e.length());
                if (removed != e.length()) {
                    throw new IllegalStateException("delalloc blocks [" + lblk + ", " + (lblk + e.length())
                            + ") of inode " + li.ino + " changed under writeback (" + removed + " found)");
                }
            }
            map = fs.extentsForChange(op, inodes, li.ino, true);
            map.insert(new ExtentMap.Extent(lblk, e.start(), e.length(), ExtentMap.FLAG_UNWRITTEN));
            InodeRecord.Builder b = fs.load(inodes, li.ino).toBuilder();
            b.blocks += e.length();
            fs.save(inodes, li.ino, b.build());
            fs.bumpExtentSequence(li.ino);
            return e;
        });
        blocksAllocated.add(got.length());
        if (delayed) {
            fs.bufferedIo().releaseMetaIfIdle(li);
        }
        return got;
    }

    /** Marks {@code [lblk, lblk + n)} written now that its data is on the device. */
    private void convert(LiveInode li, long lblk, long n) throws IOException {
        fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = fs.inodes(op);
            ExtentMap map = fs.extentsForChange(op, inodes, li.ino, false);
            map.markWritten(lblk, n);
            fs.bumpExtentSequence(li.ino);
            return null;
        });
    }

    /** Raises the record's size to {@code endByte} (never past i_size) if it is below. */
    private void raiseDiskSize(LiveInode li, long endByte) throws IOException {
        if (Math.min(li.size, endByte) <= li.diskSize) {
            return;
        }
        fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            raiseDiskSize(fs.inodes(op), li, endByte);
            return null;
        });
    }

    /** In a transaction: the record's size grows to {@code endByte}, never past i_size (read here, after any truncate's). */
    private void raiseDiskSize(BTree inodes, LiveInode li, long endByte) throws IOException {
        long target = Math.min(li.size, endByte);
        InodeRecord r = fs.load(inodes, li.ino);
        if (target > r.size()) {
            InodeRecord.Builder b = li.flushTimes(r.toBuilder());
            b.size = target;
            fs.save(inodes, li.ino, b.build());
            li.diskSize = target;
        }
    }

    // ---- throttling and the flusher ------------------------------------------------------------

    /**
     * balance_dirty_pages: called by a writer of {@code li} (holding its rwsem, no folio lock)
     * before it dirties more pages. Above the dirty limit it writes back its own inode, then
     * waits for the flusher to bring the total down.
     */
    void throttle(LiveInode li) throws IOException {
        if (cache.dirtyBytes() + cache.writebackBytes() <= dirtyLimit) {
            return;
        }
        throttled.increment();
        writeback(li, 0, Long.MAX_VALUE);
        for (int round = 0; round < 20 && cache.dirtyBytes() + cache.writebackBytes() > dirtyLimit; round++) {
            flusherLock.lock();
            try {
                kick = true;
                kicked.signal();
                progressed.awaitNanos(TimeUnit.MILLISECONDS.toNanos(50));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } finally {
                flusherLock.unlock();
            }
        }
    }

    /** Wakes the flusher now. */
    void kick() {
        flusherLock.lock();
        try {
            kick = true;
            kicked.signal();
        } finally {
            flusherLock.unlock();
        }
    }

    private void flushLoop() {
        while (!stopping) {
            flusherLock.lock();
            try {
                if (!kick) {
                    kicked.awaitNanos(PERIOD_NANOS);
                }
                kick = false;
            } catch (InterruptedException e) {
                return;
            } finally {
                flusherLock.unlock();
            }
            if (stopping) {
                return;
            }
            long now = System.nanoTime();
            for (LiveInode li : fs.liveInodes()) {
                long since = li.dirtiedAt;
                if (since == 0 || li.dead) {
                    continue;
                }
                boolean over = cache.dirtyBytes() > backgroundLimit;
                if (!over && now - since < EXPIRE_NANOS) {
                    continue;
                }
                try {
                    writebackInode(li);
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, "writeback of inode " + li.ino + " failed", e);
                }
                signalProgress();
                if (stopping) {
                    return;
                }
            }
            signalProgress();
        }
    }

    private void signalProgress() {
        flusherLock.lock();
        try {
            progressed.signalAll();
        } finally {
            flusherLock.unlock();
        }
    }

    /** Stops the flusher thread (the caller writes back what is left). */
    @Override
    public void close() {
        stopping = true;
        Thread t = flusher;
        if (t != null) {
            kick();
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
