package io.coherentfs.core.journal;

import java.time.Duration;

/**
 * Tunables of a {@link Journal}.
 *
 * @param commitInterval       the background thread commits a running transaction this long after
 *                             its first change ({@link Duration#ZERO}: never on a timer)
 * @param checkpointInterval   the background thread checkpoints committed transactions this long
 *                             after the oldest of them committed ({@code ZERO}: never on a timer)
 * @param maxTransactionBlocks a running transaction is closed to new handles and committed when
 *                             its reserved credits would pass this; 0 = choose from the log size
 *                             (a quarter of the log, at most 1024 blocks)
 * @param checkpointPercent    after a commit, checkpoint when more than this percentage of the log
 *                             is in use
 */
public record JournalOptions(Duration commitInterval, Duration checkpointInterval, int maxTransactionBlocks,
        int checkpointPercent) {

    public static final JournalOptions DEFAULTS = new JournalOptions(Duration.ofSeconds(5), Duration.ofSeconds(30), 0, 50);

    public JournalOptions {
        if (commitInterval.isNegative() || checkpointInterval.isNegative()) {
            throw new IllegalArgumentException("intervals must not be negative");
        }
        if (maxTransactionBlocks < 0) {
            throw new IllegalArgumentException("maxTransactionBlocks must not be negative");
        }
        if (checkpointPercent < 1 || checkpointPercent > 100) {
            throw new IllegalArgumentException("checkpointPercent must be in [1, 100]");
        }
    }

    public JournalOptions withCommitInterval(Duration d) {
        return new JournalOptions(d, checkpointInterval, maxTransactionBlocks, checkpointPercent);
    }

    public JournalOptions withCheckpointInterval(Duration d) {
        return new JournalOptions(commitInterval, d, maxTransactionBlocks, checkpointPercent);
    }

    public JournalOptions withMaxTransactionBlocks(int blocks) {
        return new JournalOptions(commitInterval, checkpointInterval, blocks, checkpointPercent);
    }

    public JournalOptions withCheckpointPercent(int percent) {
        return new JournalOptions(commitInterval, checkpointInterval, maxTransactionBlocks, percent);
    }
}
