package io.coherentfs.core.meta;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.BitmapFormat;
import io.coherentfs.core.alloc.BitmapRegion;
import io.coherentfs.core.alloc.BlockAllocator;
import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.alloc.Reservation;
import io.coherentfs.core.format.Layout;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.journal.Handle;
import io.coherentfs.core.journal.Journal;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.journal.MetaBuffer;
import io.coherentfs.core.journal.MetaCache;
import java.io.IOException;
import java.util.List;
import java.util.UUID;
import java.util.function.UnaryOperator;

/**
 * The engine's metadata under one roof: the superblock (in memory, logged when it changes), the
 * metadata cache, the journal and the block allocator, and {@link MetaOp}, the transaction every
 * filesystem operation runs its metadata changes in.
 *
 * <p>Life cycle: {@link #format} lays out a fresh image (journal, bitmap, superblock and its
 * backup); {@link #mount} replays the journal, loads the bitmap and marks the image in use;
 * {@link #close} commits and checkpoints everything, then marks it clean and rewrites the backup.
 *
 * <p>Locks: the superblock is guarded by this object's monitor (tier 5); {@link #begin} must be
 * called with no filesystem lock that an open MetaOp's owner may need (it can wait for a commit).
 */
public final class MetaStore implements AutoCloseable {
    /** Device blocks one bitmap block covers. */
    public static final long BLOCKS_PER_BITMAP_BLOCK = (long) BitmapFormat.WORDS_PER_BLOCK * Long.SIZE;

    private final BlockDevice device;
    private final AlignedBufferPool pool;
    private final MetaCache cache;
    private final Journal journal;
    private final BlockAllocator allocator;
    /** Changed only by {@link #remountReadOnly} and {@link #remountReadWrite}. */
    private volatile boolean readOnly;
    private Superblock superblock;
    private long reuseRegisteredFor;
    /**
     * Blocks kept back for the tree nodes of operations that free space (unlink, truncate, punch):
     * they must work on a full filesystem. Topped up again when blocks come free. Null while
     * the store has never been writable.
     */
    private volatile Reservation emergency;
    private final long emergencyTarget;

    private MetaStore(BlockDevice device, AlignedBufferPool pool, MetaCache cache, Journal journal,
            BlockAllocator allocator, Superblock superblock, boolean readOnly) throws ErrnoException {
        this.device = device;
        this.pool = pool;
        this.cache = cache;
        this.journal = journal;
        this.allocator = allocator;
        this.superblock = superblock;
        this.readOnly = readOnly;
        this.emergencyTarget = Math.clamp(superblock.layout().blockCount() / 200, 64, 8192);
        this.emergency = readOnly ? null : allocator.reserve(0);
        topUpEmergency();
    }

    /** Metadata blocks an operation that consumes space reserves for its tree changes. */
    public static final int METADATA_RESERVE = 32;

    /** What an operation does to free space, which decides where its tree nodes come from. */
    public enum Space {
        /** Creates or grows: reserves {@link #METADATA_RESERVE} blocks up front, ENOSPC when it cannot. */
        CONSUMES,
        /** Removes or shrinks: draws tree nodes from the emergency reserve, so it works on a full filesystem. */
        FREES,
        /**
         * Moves what exists (rename): reserves as {@link #CONSUMES} while there is space, and
         * draws on the emergency reserve when the filesystem is full. Its needs are a few tree
         * nodes at most, and it must work on a full filesystem: libfuse 2 turns the unlink of a
         * file still open (its release arrives after the unlink) into a rename to a hidden name.
         */
        REARRANGES
    }

    /** Blocks the emergency reserve holds now (statfs counts them free but not available). */
    public long emergencyBlocks() {
        Reservation r = emergency;
        return r == null ? 0 : r.remaining();
    }

    /** Refills the emergency reserve as far as free space allows. */
    public void topUpEmergency() {
        if (emergency == null) {
            return;
        }
        long deficit = emergencyTarget - emergency.remaining();
        if (deficit <= 0) {
            return;
        }
        long available = allocator.statfs().availableBlocks();
        try {
            allocator.extend(emergency, Math.min(deficit, Math.max(0, available)));
        } catch (ErrnoException.NoSpaceException raced) {
            // Someone took the space meanwhile; the next operation tries again.
        }
    }

    /**
     * Writes an empty coherentfs layout: journal, free-space bitmap (with the fixed regions in
     * use), and the superblock at both ends. Tree roots are 0: the engine creates the trees and
     * the root directory in its first transaction.
     */
    public static Superblock format(BlockDevice device, AlignedBufferPool pool, String label, UUID uuid)
            throws IOException {
        Layout layout = Layout.forDevice(device.size(), BLOCKS_PER_BITMAP_BLOCK);
        BitmapRegion region = new BitmapRegion(layout.bitmapStart(), layout.blockCount());
        if (region.blockCount() != layout.bitmapBlocks()) {
            throw new IllegalStateException("bitmap region of " + region.blockCount() + " blocks, layout says "
                    + layout.bitmapBlocks());
        }
        Journal.format(device, layout.journalStart(), layout.journalBlocks());
        BlockAllocator.format(device, pool, region, List.of(new Extent(0, 1),
                new Extent(layout.journalStart(), layout.journalBlocks()), new Extent(layout.backupSuperblock(), 1)));
        long now = System.currentTimeMillis() * 1_000_000L;
        Superblock sb = new Superblock(Superblock.VERSION, 0, 0, 0, uuid, label, Superblock.STATE_CLEAN, layout,
                0, 0, 0, 0, 2, 1, now, 0, now, 0, 1);
        writeBoth(device, pool, sb);
        return sb;
    }

    /** Writes {@code sb} to block 0 and to the backup, flushed. */
    private static void writeBoth(BlockDevice device, AlignedBufferPool pool, Superblock sb) throws IOException {
        try (AlignedBuffer buf = pool.allocate(Layout.BLOCK_SIZE)) {
            sb.encode(buf.segment());
            device.write(0, buf.segment());
            device.write(sb.layout().backupSuperblock() * Layout.BLOCK_SIZE, buf.segment());
        }
        device.flush();
    }

    /**
     * Reads the superblock (falling back to the backup when block 0 is bad), replays the journal,
     * loads the bitmap, and — unless read-only — marks the image in use.
     */
    public static MetaStore mount(BlockDevice device, AlignedBufferPool pool, JournalOptions options,
            boolean readOnly) throws IOException {
        Superblock sb = readSuperblock(device, pool);
        Layout layout = sb.layout();
        if (layout.blockCount() * Layout.BLOCK_SIZE > device.size()) {
            throw new ErrnoException(Errno.EUCLEAN, "mount", "the superblock describes " + layout.blockCount()
                    + " blocks but " + device.geometry().path() + " has only " + device.size() / Layout.BLOCK_SIZE);
        }
        MetaCache cache = new MetaCache(device, pool, 8192);
        Journal journal = Journal.open(device, layout.journalStart(), layout.journalBlocks(), cache, options);
        try {
            // Replay may have rewritten block 0: read the superblock again.
            sb = readSuperblock(device, pool);
            BlockAllocator allocator = BlockAllocator.mount(device, pool,
                    new BitmapRegion(layout.bitmapStart(), layout.blockCount()));
            MetaStore store = new MetaStore(device, pool, cache, journal, allocator, sb, readOnly);
            if (!readOnly) {
                store.markInUse();
            }
            return store;
        } catch (IOException | RuntimeException e) {
            journal.close();
            cache.close();
            throw e;
        }
    }

    private void markInUse() throws IOException {
        writeState(s -> {
            Superblock.Builder b = s.toBuilder();
            b.state &= ~Superblock.STATE_CLEAN;
            b.lastMountedNanos = System.currentTimeMillis() * 1_000_000L;
            b.mountCount++;
            return b.build();
        });
    }

    /**
     * Makes a writable store read-only (remount,ro): commits and checkpoints everything and marks
     * the image clean in both superblock copies, as an unmount would, so that the image is
     * consistent on disk for as long as it stays read-only. The caller has written back all
     * data first and lets no writer in meanwhile ({@code CoherentFs.remount} does both).
     */
    public synchronized void remountReadOnly() throws IOException {
        if (readOnly) {
            return;
        }
        if (journal.isAborted()) {
            throw new ErrnoException(Errno.EIO, "remount", "the journal has aborted; unmount and run fsck");
        }
        readOnly = true;
        journal.commit();
        journal.checkpoint();
        Superblock clean = superblock.withState(superblock.state() | Superblock.STATE_CLEAN);
        superblock = clean;
        writeBoth(device, pool, clean);
    }

    /**
     * Makes a read-only store writable again (remount,rw): EROFS when the device was opened
     * read-only. Marks the image in use, as a read-write mount does.
     */
    public synchronized void remountReadWrite() throws IOException {
        if (!readOnly) {
            return;
        }
        if (device.isReadOnly()) {
            throw new ErrnoException.ReadOnlyException("remount", device.geometry().path()
                    + " is open read-only (not writable when it was mounted); unmount and mount it rw");
        }
        if (emergency == null) {
            emergency = allocator.reserve(0);
        }
        topUpEmergency();
        readOnly = false;
        markInUse();
    }

    /** Block 0's superblock, or the backup's when block 0 does not verify. */
    public static Superblock readSuperblock(BlockDevice device, AlignedBufferPool pool) throws IOException {
        try (AlignedBuffer buf = pool.allocate(Layout.BLOCK_SIZE)) {
            device.read(0, buf.segment());
            try {
                return Superblock.decode(buf.segment(), 0);
            } catch (ErrnoException primary) {
                if (primary.errno() != Errno.EUCLEAN.code()) {
                    throw primary;
                }
                long last = device.size() / Layout.BLOCK_SIZE - 1;
                device.read(last * Layout.BLOCK_SIZE, buf.segment());
                try {
                    Superblock backup = Superblock.decode(buf.segment(), last);
                    System.getLogger(MetaStore.class.getName()).log(System.Logger.Level.WARNING,
                            "superblock at block 0 is bad ({0}); using the backup at block {1}",
                            primary.getMessage(), last);
                    return backup;
                } catch (ErrnoException backupToo) {
                    primary.addSuppressed(backupToo);
                    throw primary;
                }
            }
        }
    }

    /** Changes the superblock in a transaction of its own and commits it. */
    private void writeState(UnaryOperator<Superblock> change) throws IOException {
        try (MetaOp op = begin(4, Space.FREES)) {
            update(op, change);
        }
        journal.commit();
    }

    /**
     * Begins an operation's transaction with up to {@code credits} journal credits (fewer when
     * the journal is too small to give that many to one handle).
     */
    public MetaOp begin(int credits) throws IOException {
        return begin(credits, Space.CONSUMES);
    }

    /**
     * Begins an operation's transaction. {@link Space#CONSUMES} reserves the blocks its tree
     * changes may need first, so ENOSPC comes before anything changed.
     */
    public MetaOp begin(int credits, Space space) throws IOException {
        if (readOnly) {
            throw new ErrnoException.ReadOnlyException("write", "the filesystem is mounted read-only");
        }
        Reservation own = switch (space) {
            case CONSUMES -> allocator.reserve(METADATA_RESERVE);
            case FREES -> null;
            case REARRANGES -> {
                try {
                    yield allocator.reserve(METADATA_RESERVE);
                } catch (ErrnoException.NoSpaceException full) {
                    yield null;
                }
            }
        };
        try {
            return new MetaOp(this, journal.begin(Math.min(credits, journal.maxTransactionBlocks())),
                    own != null ? own : emergency, own != null);
        } catch (IOException | RuntimeException e) {
            if (own != null) {
                allocator.release(own, own.remaining());
            }
            throw e;
        }
    }

    public synchronized Superblock superblock() {
        return superblock;
    }

    /** Changes the in-memory superblock; {@code op} logs it when it closes. */
    public synchronized void update(MetaOp op, UnaryOperator<Superblock> change) {
        superblock = change.apply(superblock);
        op.superblockChanged();
    }

    void logSuperblock(Handle handle) throws IOException {
        try (MetaBuffer b = handle.getWrite(0)) {
            synchronized (this) {
                superblock.encode(b.segment());
            }
        }
    }

    /** Blocks freed in transaction {@code sequence} become allocatable once it is checkpointed. */
    synchronized void reuseAfterCheckpoint(long sequence) {
        if (sequence == reuseRegisteredFor) {
            return;
        }
        reuseRegisteredFor = sequence;
        journal.onCheckpointed(sequence, () -> {
            allocator.transactionCheckpointed(sequence);
            topUpEmergency();
        });
    }

    public BlockDevice device() {
        return device;
    }

    public AlignedBufferPool pool() {
        return pool;
    }

    public MetaCache cache() {
        return cache;
    }

    public Journal journal() {
        return journal;
    }

    public BlockAllocator allocator() {
        return allocator;
    }

    public boolean isReadOnly() {
        return readOnly;
    }

    /** Commits every change (syncfs, fsync). */
    public void commit() throws IOException {
        journal.commit();
    }

    /**
     * Commits and checkpoints everything, then marks the image clean in both superblock copies.
     * The device stays open (its owner closes it).
     */
    @Override
    public void close() throws IOException {
        try {
            if (!readOnly && !journal.isAborted()) {
                journal.commit();
                journal.checkpoint();
                Superblock clean;
                synchronized (this) {
                    clean = superblock.withState(superblock.state() | Superblock.STATE_CLEAN);
                    superblock = clean;
                }
                journal.close();
                writeBoth(device, pool, clean);
            } else {
                journal.close();
            }
        } finally {
            cache.close();
        }
    }
}
