package io.coherentfs.core.journal;

/**
 * What {@link Journal#open} found in the log and did, for the mount log and fsck.
 *
 * @param transactionsReplayed complete transactions whose images were written home
 * @param blocksReplayed       images written home (a block logged by several transactions counts
 *                             once per transaction)
 * @param firstSequence        sequence of the first replayed transaction (the superblock's first
 *                             sequence when none was)
 * @param lastSequence         sequence of the last replayed transaction, or firstSequence - 1
 * @param nextSequence         the sequence the journal gives its next transaction
 * @param stopReason           why the scan stopped: "end of log" for a clean end (a stale block
 *                             at the head), else what was wrong with the first rejected transaction
 */
public record ReplayReport(int transactionsReplayed, long blocksReplayed, long firstSequence, long lastSequence,
        long nextSequence, String stopReason) {

    @Override
    public String toString() {
        return "journal replay: " + transactionsReplayed + " transactions (" + (transactionsReplayed == 0 ? "none"
                : firstSequence + ".." + lastSequence) + "), " + blocksReplayed + " blocks; stopped: " + stopReason
                + "; next sequence " + nextSequence;
    }
}
