package io.coherentfs.core.alloc;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.error.ErrnoException.NoSpaceException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.LongPredicate;

/**
 * The block allocator: hands out and takes back runs of 4 KiB device blocks, keeps delayed-
 * allocation reservations and the statfs figures, and produces the changed bitmap blocks of each
 * transaction for the journal. It does no IO on the hot path.
 *
 * <h2>State</h2>
 * <ul>
 *   <li>{@code avail}: a {@link BlockBitmap} whose set bits are blocks that may not be handed out:
 *       in use, or freed by a transaction that is not yet checkpointed ("pending free").</li>
 *   <li>{@code pending}: the pending-free extents, by the sequence of the transaction that freed
 *       them. {@link #transactionCheckpointed} clears them in {@code avail}. Blocks freed in
 *       transaction N are thus allocatable only once N is committed <em>and</em> checkpointed, which
 *       replaces jbd2 revoke records (docs/STORAGE.md, "Free space").</li>
 *   <li>{@code disk}: the bitmap as of the last {@link #writeDirtyBlocks} call, and {@code unwritten}:
 *       the set/clear changes made since, by transaction sequence. {@code writeDirtyBlocks(tx)} folds
 *       the changes of sequences {@code <= tx} into {@code disk} and seals the bitmap blocks they
 *       touched; changes of later transactions (running while tx commits) stay out of tx's images.
 *       A block freed in tx is free in tx's images even though {@code avail} still holds it.
 *       (Memory: two bits per device block, 32 MiB per TiB for each bitmap.)</li>
 *   <li>{@code reservedBlocks}: the sum of all open {@link Reservation}s.</li>
 * </ul>
 * Invariants (under the lock): {@code 0 <= reservedBlocks <= avail.freeBlocks()}; pending extents
 * are disjoint and set in {@code avail}; {@code avail} = newest bitmap + pending extents; the
 * newest bitmap = {@code disk} + {@code unwritten} changes applied in sequence order.
 *
 * <h2>Accounting (statfs)</h2>
 * {@code free} counts blocks free in the newest bitmap, pending frees included (they become
 * allocatable without anyone's action once the journal checkpoints); {@code available} is what a
 * reservation or allocation can get now: {@code free - pending - reserved}. Allocation and
 * reservation fail with ENOSPC against {@code available}; when {@code pendingFreeBlocks > 0} the
 * caller may force a commit and checkpoint and retry (as ext4_should_retry_alloc does).
 *
 * <h2>Concurrency</h2>
 * Thread-safe. Two monitors, both tier 5 (DESIGN.md section 4), taken in this order:
 * <ol>
 *   <li>{@code writeOutLock}, held only by {@link #writeDirtyBlocks} while it seals images and
 *       hands them to its sink. It serializes deliveries, so that when two handles of one
 *       transaction write out the same bitmap block, the newer image always arrives last. The
 *       sink runs under it (and may take journal locks: {@code Handle.getWrite}); the sink must
 *       not call back into this allocator's {@code writeDirtyBlocks}.</li>
 *   <li>{@link #lock}, the state lock: every method takes it for a short critical section that
 *       does no IO, takes no other lock and calls nothing outside this package.</li>
 * </ol>
 * Both may be taken while holding locks of tiers 1-4 and the extent-tree lock; neither is held
 * on return.
 *
 * <h2>Contract with the journal</h2>
 * Every change is tagged with {@link Txn#sequence()}. Every journal handle that changed the
 * allocator calls {@link #writeDirtyBlocks} with its transaction before it closes, and logs the
 * images it gets (re-logging a block already in the transaction is free). Several handles of one
 * transaction S may do so, in any order; once a handle of a later transaction has written out,
 * changes tagged S are refused with IllegalStateException (S is committing: a change would miss
 * its log). This relies on the journal's rule that handles of S and S+1 are never open at once.
 * When S is checkpointed the journal calls {@link #transactionCheckpointed}(S) (through
 * {@code Journal.onCheckpointed}). If a commit fails after {@code writeDirtyBlocks}, the journal
 * must abort (the in-memory state is ahead of the log).
 */
public final class BlockAllocator {
    private record Change(boolean set, Extent extent) {
    }

    /** Tier 5, taken before {@link #lock}: serializes {@link #writeDirtyBlocks} deliveries. */
    private final Object writeOutLock = new Object();
    /** Tier 5 (DESIGN.md section 4): guards every field below and every {@link Reservation#remaining}. */
    final Object lock = new Object();

    private final BitmapRegion region;
    private final BlockBitmap avail;
    private final BlockBitmap disk;
    private final TreeMap<Long, List<Change>> unwritten = new TreeMap<>();
    private long lastWrittenSequence;
    private final TreeMap<Long, List<Extent>> pendingBySequence = new TreeMap<>();
    private final TreeMap<Long, Extent> pendingByStart = new TreeMap<>();
    private long pendingBlocks;
    private long reservedBlocks;

    /**
     * An allocator over {@code bitmap} (copied), as loaded from the device: no pending frees, no
     * reservations.
     */
    public BlockAllocator(BitmapRegion region, BlockBitmap bitmap) {
        if (bitmap.totalBlocks() != region.totalBlocks()) {
            throw new IllegalArgumentException("bitmap of " + bitmap.totalBlocks() + " blocks for a region describing "
                    + region.totalBlocks());
        }
        this.region = region;
        this.avail = bitmap.copy();
        this.disk = bitmap.copy();
    }

    /**
     * mkfs: writes a fresh bitmap region in which only the region itself and {@code inUse} are in
     * use, flushes, and returns an allocator over it.
     */
    public static BlockAllocator format(BlockDevice device, AlignedBufferPool pool, BitmapRegion region,
            List<Extent> inUse) throws IOException {
        return new BlockAllocator(region, BitmapDeviceIO.format(device, pool, region, inUse));
    }

    /**
     * Mount: reads and checks the bitmap region.
     *
     * @throws ErrnoException EUCLEAN naming a bitmap block whose checksum or header is wrong
     */
    public static BlockAllocator mount(BlockDevice device, AlignedBufferPool pool, BitmapRegion region)
            throws IOException {
        return new BlockAllocator(region, BitmapDeviceIO.load(device, pool, region));
    }

    public BitmapRegion region() {
        return region;
    }

    /**
     * Allocates a free run of {@code minLength..maxLength} blocks at or near {@code goal} (policy:
     * {@link BlockBitmap#find}) from space no reservation holds. The blocks are in use in tx's
     * bitmap images. May return fewer than {@code maxLength} blocks: the caller loops.
     *
     * @throws NoSpaceException ENOSPC when fewer than {@code minLength} blocks are available or no
     *     free run has {@code minLength} blocks
     */
    public Extent allocate(long goal, long minLength, long maxLength, Txn tx) throws NoSpaceException {
        return allocate(null, goal, minLength, maxLength, tx);
    }

    /**
     * Like {@link #allocate(long, long, long, Txn)}, drawing first on {@code reservation}: the
     * allocation may use the reservation's blocks plus unreserved space, and consumes
     * {@code min(length, remaining)} of the reservation.
     *
     * @param reservation a reservation of this allocator, or null for none
     */
    public Extent allocate(Reservation reservation, long goal, long minLength, long maxLength, Txn tx)
            throws NoSpaceException {
        if (minLength < 1 || maxLength < minLength) {
            throw new IllegalArgumentException("length range [" + minLength + ", " + maxLength + "]");
        }
        long sequence = sequenceOf(tx);
        synchronized (lock) {
            requireOpen(sequence);
            long own = 0;
            if (reservation != null) {
                requireOwn(reservation);
                own = reservation.remaining;
            }
            long budget = avail.freeBlocks() - reservedBlocks + own;
            long cap = Math.min(maxLength, budget);
            if (cap < minLength) {
                throw new NoSpaceException("allocate", "need " + minLength + " blocks, " + budget + " available"
                        + describeHeld());
            }
            Extent e = avail.find(goal, minLength, cap);
            if (e == null) {
                Extent largest = avail.largestFreeRun();
                throw new NoSpaceException("allocate", "no free run of " + minLength + " blocks (largest "
                        + (largest == null ? 0 : largest.length()) + ")" + describeHeld());
            }
            avail.set(e.start(), e.length());
            record(sequence, new Change(true, e));
            if (reservation != null) {
                long take = Math.min(e.length(), reservation.remaining);
                reservation.remaining -= take;
                reservedBlocks -= take;
            }
            return e;
        }
    }

    /**
     * Frees {@code [start, start + length)} in transaction tx: the blocks are free in tx's bitmap
     * images (and count as free in {@link #statfs}) but are not handed out again until
     * {@link #transactionCheckpointed} reports tx's sequence.
     *
     * @throws ErrnoException EUCLEAN when a block of the range is already free or already waiting
     *     to be freed (a double free: the caller's structures disagree with the bitmap); nothing
     *     changes then
     * @throws IllegalArgumentException for a range outside the device or touching the bitmap region
     */
    public void free(long start, long length, Txn tx) throws ErrnoException {
        Extent e = new Extent(start, length);
        if (e.end() > region.totalBlocks()) {
            throw new IllegalArgumentException(e + " is past the end of the device (" + region.totalBlocks() + " blocks)");
        }
        if (e.overlaps(region.extent())) {
            throw new IllegalArgumentException(e + " overlaps the bitmap region " + region.extent());
        }
        long sequence = sequenceOf(tx);
        synchronized (lock) {
            requireOpen(sequence);
            Map.Entry<Long, Extent> before = pendingByStart.floorEntry(e.end() - 1);
            if (before != null && before.getValue().overlaps(e)) {
                throw new ErrnoException(Errno.EUCLEAN, "free", e + " overlaps " + before.getValue()
                        + ", already freed and waiting for its transaction's checkpoint");
            }
            if (!avail.isUsed(start, length)) {
                throw new ErrnoException(Errno.EUCLEAN, "free", e + " includes block "
                        + avail.nextFree(start) + ", which is already free");
            }
            record(sequence, new Change(false, e));
            pendingBySequence.computeIfAbsent(sequence, k -> new ArrayList<>()).add(e);
            pendingByStart.put(start, e);
            pendingBlocks += length;
        }
    }

    /** {@link #free(long, long, Txn)} of an extent. */
    public void free(Extent extent, Txn tx) throws ErrnoException {
        free(extent.start(), extent.length(), tx);
    }

    /**
     * The journal checkpointed every transaction up to {@code sequence}: blocks they freed become
     * allocatable.
     *
     * @throws IllegalStateException when a transaction up to {@code sequence} changed the bitmap
     *     but those changes were never handed out by {@link #writeDirtyBlocks}
     */
    public void transactionCheckpointed(long sequence) {
        synchronized (lock) {
            if (!unwritten.isEmpty() && unwritten.firstKey() <= sequence) {
                throw new IllegalStateException("transaction " + unwritten.firstKey()
                        + " changed the bitmap but its blocks were never written (writeDirtyBlocks), yet "
                        + sequence + " is checkpointed");
            }
            SortedMap<Long, List<Extent>> done = pendingBySequence.headMap(sequence, true);
            for (List<Extent> extents : done.values()) {
                for (Extent e : extents) {
                    avail.clear(e.start(), e.length());
                    pendingByStart.remove(e.start());
                    pendingBlocks -= e.length();
                }
            }
            done.clear();
        }
    }

    /**
     * Promises {@code blocks} blocks for delayed allocation without choosing them.
     *
     * @throws NoSpaceException ENOSPC when fewer than {@code blocks} are available (free, not
     *     reserved, not waiting for a checkpoint)
     */
    public Reservation reserve(long blocks) throws NoSpaceException {
        Reservation r = new Reservation(this, 0);
        extend(r, blocks);
        return r;
    }

    /**
     * Adds {@code blocks} to an existing reservation, with the same rule as {@link #reserve}; on
     * ENOSPC the reservation is unchanged.
     */
    public void extend(Reservation reservation, long blocks) throws NoSpaceException {
        if (blocks < 0) {
            throw new IllegalArgumentException("cannot reserve " + blocks + " blocks");
        }
        synchronized (lock) {
            requireOwn(reservation);
            long available = avail.freeBlocks() - reservedBlocks;
            if (available < blocks) {
                throw new NoSpaceException("reserve", "need " + blocks + " blocks, " + available + " available"
                        + describeHeld());
            }
            reservedBlocks += blocks;
            reservation.remaining += blocks;
        }
    }

    /**
     * Gives back {@code blocks} of a reservation (all of it: {@code reservation.remaining()}).
     *
     * @throws IllegalArgumentException when the reservation holds fewer
     */
    public void release(Reservation reservation, long blocks) {
        synchronized (lock) {
            requireOwn(reservation);
            if (blocks < 0 || blocks > reservation.remaining) {
                throw new IllegalArgumentException("cannot release " + blocks + " blocks of a reservation of "
                        + reservation.remaining);
            }
            reservation.remaining -= blocks;
            reservedBlocks -= blocks;
        }
    }

    /** The space figures, consistent with each other at one moment. */
    public StatFs statfs() {
        synchronized (lock) {
            long allocatable = avail.freeBlocks();
            return new StatFs(region.totalBlocks(), allocatable + pendingBlocks, allocatable - reservedBlocks,
                    reservedBlocks, pendingBlocks);
        }
    }

    /**
     * Seals every bitmap block changed (and not yet written out) by transactions up to tx
     * inclusive, with the changes made so far, and hands the images to {@code sink} in block order.
     * Changes of later transactions are not included. Call it from every handle that changed the
     * allocator, before the handle closes; calls for one sequence may repeat, and sequences must
     * not decrease. Holds {@code writeOutLock} (not the state lock) while calling the sink.
     *
     * @return the number of blocks handed to the sink
     * @throws IllegalStateException when a later transaction has already written out
     */
    public int writeDirtyBlocks(Txn tx, BlockSink sink) throws IOException {
        long sequence = sequenceOf(tx);
        Objects.requireNonNull(sink, "sink");
        synchronized (writeOutLock) {
            return writeOut(sequence, sink);
        }
    }

    /** Holds writeOutLock. */
    private int writeOut(long sequence, BlockSink sink) throws IOException {
        List<Long> blocks = new ArrayList<>();
        List<MemorySegment> images = new ArrayList<>();
        synchronized (lock) {
            if (sequence < lastWrittenSequence) {
                throw new IllegalStateException("bitmap blocks of transaction " + lastWrittenSequence
                        + " were already written; " + sequence + " is older");
            }
            TreeSet<Long> dirty = new TreeSet<>();
            NavigableMap<Long, List<Change>> head = unwritten.headMap(sequence, true);
            for (List<Change> changes : head.values()) {
                for (Change c : changes) {
                    Extent e = c.extent();
                    if (c.set()) {
                        disk.set(e.start(), e.length());
                    } else {
                        disk.clear(e.start(), e.length());
                    }
                    for (long i = BitmapRegion.indexOf(e.start()); i <= BitmapRegion.indexOf(e.end() - 1); i++) {
                        dirty.add(i);
                    }
                }
            }
            head.clear();
            lastWrittenSequence = sequence;
            for (long index : dirty) {
                MemorySegment image = MemorySegment.ofArray(new byte[BitmapFormat.BLOCK_SIZE]);
                BitmapFormat.encode(region, index, disk, image);
                blocks.add(region.start() + index);
                images.add(image.asReadOnly());
            }
        }
        for (int i = 0; i < images.size(); i++) {
            sink.write(blocks.get(i), images.get(i));
        }
        return images.size();
    }

    /**
     * fsck: compares the newest bitmap (pending frees counted as free) with the blocks the
     * filesystem's structures reference. The bitmap region counts as referenced by itself;
     * {@code referenced} must answer for everything else (superblocks, journal, tree nodes, data).
     * Runs under the lock, calling {@code referenced} once per block: give it a precomputed set.
     */
    public CheckReport check(LongPredicate referenced) {
        synchronized (lock) {
            BlockBitmap newest = avail.copy();
            for (Extent e : pendingByStart.values()) {
                newest.clear(e.start(), e.length());
            }
            Extent own = region.extent();
            List<Extent> leaked = new ArrayList<>();
            List<Extent> unsafe = new ArrayList<>();
            long leakStart = -1;
            long unsafeStart = -1;
            long total = region.totalBlocks();
            for (long b = 0; b <= total; b++) {
                boolean leak = false;
                boolean danger = false;
                if (b < total) {
                    boolean used = newest.isUsed(b);
                    boolean ref = own.contains(b) || referenced.test(b);
                    leak = used && !ref;
                    danger = !used && ref;
                }
                if (leak && leakStart < 0) {
                    leakStart = b;
                } else if (!leak && leakStart >= 0) {
                    leaked.add(new Extent(leakStart, b - leakStart));
                    leakStart = -1;
                }
                if (danger && unsafeStart < 0) {
                    unsafeStart = b;
                } else if (!danger && unsafeStart >= 0) {
                    unsafe.add(new Extent(unsafeStart, b - unsafeStart));
                    unsafeStart = -1;
                }
            }
            return new CheckReport(leaked, unsafe);
        }
    }

    /** A copy of the newest bitmap (pending frees free), e.g. to compare with what was written. */
    public BlockBitmap snapshot() {
        synchronized (lock) {
            BlockBitmap newest = avail.copy();
            for (Extent e : pendingByStart.values()) {
                newest.clear(e.start(), e.length());
            }
            return newest;
        }
    }

    private static long sequenceOf(Txn tx) {
        long sequence = Objects.requireNonNull(tx, "tx").sequence();
        if (sequence < 1) {
            throw new IllegalArgumentException("transaction sequence " + sequence + " is not positive");
        }
        return sequence;
    }

    /** Holds lock. */
    private void requireOpen(long sequence) {
        if (sequence < lastWrittenSequence) {
            throw new IllegalStateException("transaction " + sequence + " is over: transaction "
                    + lastWrittenSequence + " already wrote out its bitmap blocks");
        }
    }

    private void requireOwn(Reservation reservation) {
        if (reservation.owner != this) {
            throw new IllegalArgumentException("reservation of another allocator");
        }
    }

    /** Holds lock. */
    private void record(long sequence, Change change) {
        unwritten.computeIfAbsent(sequence, k -> new ArrayList<>()).add(change);
    }

    /** Holds lock. */
    private String describeHeld() {
        return " (" + reservedBlocks + " reserved, " + pendingBlocks + " freed and waiting for a checkpoint)";
    }
}
