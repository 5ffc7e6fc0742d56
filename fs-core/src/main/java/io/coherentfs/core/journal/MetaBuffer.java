package io.coherentfs.core.journal;

import io.coherentfs.blockdev.AlignedBuffer;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * One cached 4 KiB metadata block (a buffer head): its block number and a native, 4096-aligned
 * segment holding its bytes. Obtained pinned from {@link MetaCache#get} or
 * {@link Handle#getWrite}; {@link #close()} drops that pin. While pinned, the segment stays valid at
 * the same address; once every pin is gone the cache may evict it and reuse the memory, so the
 * segment must not be touched after {@code close()}.
 *
 * <p>Who may write the segment: only the holder of a journal {@link Handle} that obtained it with
 * {@code getWrite}/{@code getCreate}, and only until that handle closes. Excluding concurrent
 * readers and writers of the same block is the caller's job (the tree lock, tier 5), as with
 * buffer heads; the journal only guarantees that what it logs for a committing transaction is not
 * disturbed by writers of the next one (frozen copies).
 */
public final class MetaBuffer implements AutoCloseable {
    private final MetaCache cache;
    private final long block;
    final AlignedBuffer buffer;
    private final MemorySegment segment;

    // ---- cache state, guarded by the cache's lock ----
    int pins;
    boolean loaded;
    IOException loadFailure;
    boolean evicted;

    // ---- journal state, guarded by the journal's lock ----
    /** The newest transaction (running or committing) whose image this live content belongs to. */
    Transaction transaction;
    /** The committing transaction's image, copied before the running transaction changed it. */
    AlignedBuffer frozen;
    Transaction frozenFor;
    /** Sequence of the newest transaction that logged this block; 0 if none since the journal opened. */
    long newestSequence;
    /** True while the journal holds its own pin (from joining a transaction until checkpointed). */
    boolean journalPinned;

    MetaBuffer(MetaCache cache, long block, AlignedBuffer buffer) {
        this.cache = cache;
        this.block = block;
        this.buffer = buffer;
        this.segment = buffer.segment();
    }

    /** The device block number (byte offset = block * 4096). */
    public long block() {
        return block;
    }

    /** The block's 4096 bytes; valid while pinned. */
    public MemorySegment segment() {
        return segment;
    }

    /** Drops one pin. */
    @Override
    public void close() {
        cache.unpin(this);
    }

    @Override
    public String toString() {
        return "MetaBuffer[block " + block + "]";
    }
}
