package io.coherentfs.core.alloc;

/**
 * The allocator's view of a journal transaction: only its sequence number. The filesystem adapts
 * the journal's handle to it (e.g. {@code handle::sequence}). Sequence numbers grow with time:
 * a transaction with a higher sequence commits after every transaction with a lower one.
 */
@FunctionalInterface
public interface Txn {
    /** The sequence number of the transaction the change commits in; positive. */
    long sequence();
}
