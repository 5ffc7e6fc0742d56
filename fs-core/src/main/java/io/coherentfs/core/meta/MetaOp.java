package io.coherentfs.core.meta;

import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.alloc.Reservation;
import io.coherentfs.core.alloc.Txn;
import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.journal.Handle;
import io.coherentfs.core.journal.MetaBuffer;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.HashSet;
import java.util.Set;

/**
 * One filesystem operation's metadata transaction: a journal {@link Handle}, seen by the B+trees
 * as their {@link NodeStore} and by the allocator as its {@link Txn}. Everything an operation
 * changes — tree nodes, bitmap blocks, the superblock — commits atomically with its handle's
 * transaction.
 *
 * <p>Closing it hands the allocator's changed bitmap blocks and, if changed, the superblock to
 * the journal, registers the reuse of freed blocks for when the transaction is checkpointed, and
 * ends the handle.
 *
 * <p>Single-threaded: a MetaOp belongs to the thread that began it (as its handle does). The
 * caller holds the filesystem's tree lock (tier 5) while it uses the op as a NodeStore.
 */
public final class MetaOp implements NodeStore, Txn, AutoCloseable {
    private final MetaStore store;
    private final Handle handle;
    private final Pins pins = new Pins();
    /** Blocks allocated by this op and not yet modified: modify() need not read them. */
    private final Set<Long> fresh = new HashSet<>();
    private boolean freed;
    private boolean modified;
    private boolean superblockChanged;
    private boolean closed;

    /** Where this op's tree nodes come from: its own reservation, or the store's emergency reserve. */
    private final Reservation nodeBudget;
    private final boolean ownsBudget;

    MetaOp(MetaStore store, Handle handle, Reservation nodeBudget, boolean ownsBudget) {
        this.store = store;
        this.handle = handle;
        this.nodeBudget = nodeBudget;
        this.ownsBudget = ownsBudget;
    }

    @Override
    public long sequence() {
        return handle.sequence();
    }

    /** The superblock changed in memory: log it with this op. */
    void superblockChanged() {
        superblockChanged = true;
        modified = true;
    }

    /**
     * True once the op changed anything (a block, the allocator, the superblock). An op that
     * fails after that cannot be rolled back: the caller must abort the journal.
     */
    public boolean modified() {
        return modified;
    }

    @Override
    public MemorySegment read(long block) throws IOException {
        MetaBuffer b = store.cache().get(block);
        pins.pin(block, b);
        return b.segment().asReadOnly();
    }

    @Override
    public MemorySegment modify(long block) throws IOException {
        modified = true;
        MetaBuffer b = fresh.remove(block) ? handle.getCreate(block) : handle.getWrite(block);
        pins.pin(block, b);
        return b.segment();
    }

    @Override
    public void release(long block) {
        pins.release(block);
    }

    @Override
    public long allocate(long goal) throws IOException {
        Extent e = store.allocator().allocate(nodeBudget, Math.max(goal, 0), 1, 1, this);
        modified = true;
        fresh.add(e.start());
        return e.start();
    }

    @Override
    public void free(long block) throws IOException {
        freeExtent(block, 1);
    }

    /** Frees data or metadata blocks; they become reusable once this transaction is checkpointed. */
    public void freeExtent(long start, long length) throws IOException {
        fresh.remove(start);
        modified = true;
        store.allocator().free(start, length, this);
        freed = true;
    }

    /**
     * Allocates data blocks: a run of 1..{@code maxLength} blocks at or near {@code goal}, from
     * space nobody reserved. On ENOSPC nothing changed: call it before the first tree change.
     */
    public Extent allocateData(long goal, long maxLength) throws IOException {
        return allocateData(null, goal, maxLength);
    }

    /**
     * Like {@link #allocateData(long, long)}, drawing first on {@code reservation} (delayed
     * allocation's blocks, promised when the data was written to the cache).
     */
    public Extent allocateData(Reservation reservation, long goal, long maxLength) throws IOException {
        Extent e = store.allocator().allocate(reservation, Math.max(goal, 0), 1, maxLength, this);
        modified = true;
        return e;
    }

    /**
     * Ends an op whose change failed half-way after the journal was aborted: releases pins and
     * the handle, and hands nothing more to the journal.
     */
    public void closeAborted() {
        if (closed) {
            return;
        }
        closed = true;
        pins.releaseAll();
        releaseBudget();
        handle.close();
    }

    private void releaseBudget() {
        if (ownsBudget) {
            store.allocator().release(nodeBudget, nodeBudget.remaining());
        } else if (freed) {
            store.topUpEmergency();
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            pins.releaseAll();
            store.allocator().writeDirtyBlocks(this, (block, image) -> {
                try (MetaBuffer b = handle.getWrite(block)) {
                    MemorySegment.copy(image, 0, b.segment(), 0, image.byteSize());
                }
            });
            if (superblockChanged) {
                store.logSuperblock(handle);
            }
            if (freed) {
                store.reuseAfterCheckpoint(sequence());
            }
        } finally {
            releaseBudget();
            handle.close();
        }
    }
}
