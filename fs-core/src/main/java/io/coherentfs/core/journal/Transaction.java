package io.coherentfs.core.journal;

import io.coherentfs.blockdev.AlignedBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One journal transaction and its life: RUNNING (handles join it) -> LOCKED (no new handles; the
 * open ones drain) -> COMMITTING (written to the log; the next transaction runs) -> COMMITTED
 * (commit block durable; checkpoint pending) -> CHECKPOINTED (home blocks durable; log space freed).
 * Every field is guarded by the journal's lock, except the log image in {@link #log}, which only
 * the commit thread writes and which is immutable once the transaction is COMMITTED.
 */
final class Transaction {
    enum State { RUNNING, LOCKED, COMMITTING, COMMITTED, CHECKPOINTED }

    final long sequence;
    State state = State.RUNNING;
    /** Blocks joined, in join order. */
    final Map<Long, MetaBuffer> blocks = new LinkedHashMap<>();
    /** Open handles. */
    int openHandles;
    /** Credits promised to open handles and not yet used. */
    int unusedCredits;
    /** System.nanoTime() of the first block joined; 0 while empty. */
    long firstChangeNanos;

    // ---- set by the commit ----
    /** Descriptors + images + commit block, as written to the log; home images are slices of it. */
    AlignedBuffer log;
    /** Log position of the first descriptor, and slots used. */
    long logStart;
    int logBlocks;
    /** Home block numbers, in image order. */
    long[] homes;
    long commitNanos;

    Transaction(long sequence) {
        this.sequence = sequence;
    }

    /** Credits this transaction holds in the log: blocks joined plus credits promised. */
    int reservedBlocks() {
        return blocks.size() + unusedCredits;
    }

    List<MetaBuffer> buffers() {
        return new ArrayList<>(blocks.values());
    }

    @Override
    public String toString() {
        return "transaction " + sequence + " (" + state + ", " + blocks.size() + " blocks)";
    }
}
