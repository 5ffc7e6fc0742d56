package io.coherentfs.core.alloc;

/**
 * Blocks promised by {@link BlockAllocator#reserve} for delayed allocation: they count against
 * free space for everyone else, but no particular blocks are chosen yet. Allocating with
 * {@link BlockAllocator#allocate(Reservation, long, long, long, Txn)} consumes it;
 * {@link BlockAllocator#release} gives blocks back.
 *
 * <p>The count is guarded by the owning allocator's lock; {@link #remaining()} takes it.
 */
public final class Reservation {
    final BlockAllocator owner;
    /** Blocks still promised. Guarded by {@code owner.lock}. */
    long remaining;

    Reservation(BlockAllocator owner, long blocks) {
        this.owner = owner;
        this.remaining = blocks;
    }

    /** Blocks still promised to this reservation. */
    public long remaining() {
        synchronized (owner.lock) {
            return remaining;
        }
    }

    @Override
    public String toString() {
        return "reservation of " + remaining() + " blocks";
    }
}
