package io.coherentfs.core.journal;

import java.io.IOException;

/**
 * A jbd2 handle: one atomic metadata change by one thread. Obtained from {@link Journal#begin},
 * which reserved {@code maxBlocks} credits (log space) for it; every block the handle adds to the
 * running transaction uses one credit (a block some handle already added costs nothing). Many
 * handles share one running transaction, and all of a handle's changes commit in that one
 * transaction: after a crash they are all visible or none is.
 *
 * <p>A handle belongs to the thread that began it; that thread must {@link #close()} it and must
 * not begin another handle, {@link Journal#commit()} or {@link Journal#checkpoint()} on the same
 * journal while it is open (each could wait for this very handle; the journal refuses with
 * IllegalStateException instead of deadlocking). The handle takes no lock across calls.
 *
 * <p>Ordered data: data blocks that a change makes reachable (an extent pointing at them) must have
 * been <em>written</em> (write completed, not necessarily flushed) before the change joins the
 * transaction with {@link #getWrite}; the commit's first device flush then makes them durable
 * before the commit block is written.
 */
public final class Handle implements AutoCloseable {
    private final Journal journal;
    final Transaction transaction;
    private final int maxBlocks;
    int credits;
    boolean closed;

    Handle(Journal journal, Transaction transaction, int maxBlocks) {
        this.journal = journal;
        this.transaction = transaction;
        this.maxBlocks = maxBlocks;
        this.credits = maxBlocks;
    }

    /**
     * The sequence number of the transaction this handle's changes commit in; pass it to
     * {@link Journal#onCheckpointed} to learn when they are at home (e.g. to reuse freed blocks).
     */
    public long sequence() {
        return transaction.sequence;
    }

    /** The credits reserved at {@link Journal#begin}. */
    public int maxBlocks() {
        return maxBlocks;
    }

    /** Credits not yet used. */
    public int remainingCredits() {
        return journal.remainingCredits(this);
    }

    /**
     * Gets write access to {@code block} (jbd2_journal_get_write_access): reads it into the cache if
     * needed, joins it to this handle's transaction, and returns it pinned; the caller mutates its
     * segment, then closes the returned buffer (drops its pin) at the latest before closing the
     * handle. If the committing transaction still has to log the block's previous content, that
     * content is frozen first (copy-on-write), so the caller may change the block at once.
     *
     * <p>Takes the cache lock and the journal lock (tier 5) briefly; may do one device read with no
     * lock held.
     *
     * @throws JournalAbortedException if the journal has aborted (EIO)
     * @throws IllegalStateException   if the handle is closed or has no credit left for a new block
     * @throws IOException             the device's exception if reading the block fails
     */
    public MetaBuffer getWrite(long block) throws IOException {
        return journal.getWrite(this, block, true);
    }

    /**
     * Like {@link #getWrite} for a block just allocated, which the caller overwrites completely: it
     * is not read from the device when not cached (its bytes are then zero).
     */
    public MetaBuffer getCreate(long block) throws IOException {
        return journal.getWrite(this, block, false);
    }

    /**
     * Ends the handle (jbd2_journal_stop): unused credits go back to the log. Its changes commit with
     * its transaction, by the timer, a size limit or {@link Journal#commit()}. Idempotent.
     */
    @Override
    public void close() {
        journal.stop(this);
    }
}
