package io.coherentfs.core.journal;

import static io.coherentfs.core.journal.JournalRig.BLOCK;
import static io.coherentfs.core.journal.JournalRig.writeChange;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.journal.JournalFormat.Superblock;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class JournalTest {
    private static final long J_START = 1;
    private static final long J_LENGTH = 256;
    private static final long HOME = 400;
    /** No timers: commits and checkpoints only when asked or forced by size and log pressure. */
    private static final JournalOptions QUIET = JournalOptions.DEFAULTS.withCommitInterval(Duration.ZERO)
            .withCheckpointInterval(Duration.ZERO);

    private JournalRig rig;

    @BeforeEach
    void setUp() throws Exception {
        rig = JournalRig.create("journal", 1024, J_START, J_LENGTH);
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
    }

    private static long[] homes(int n) {
        long[] b = new long[n];
        for (int i = 0; i < n; i++) {
            b[i] = HOME + i;
        }
        return b;
    }

    private Superblock readSuperblock() throws IOException {
        try (AlignedBuffer b = rig.pool.allocate(BLOCK)) {
            rig.device.read(J_START * BLOCK, b.segment());
            return Superblock.decode(b.segment(), J_START);
        }
    }

    /** The log as on disk: every valid transaction from the tail, with its images' tags. */
    private List<Map<Long, Long>> scanLog() throws IOException {
        List<Map<Long, Long>> txs = new ArrayList<>();
        LogScanner.scan(rig.device, rig.pool, readSuperblock(), tx -> {
            Map<Long, Long> m = new HashMap<>();
            for (int i = 0; i < tx.homes().length; i++) {
                m.put(tx.homes()[i], JournalRig.tagOf(tx.image(i), tx.homes()[i]));
            }
            txs.add(m);
        });
        return txs;
    }

    @Test
    void committedAndCheckpointedChangesSurviveReopen() throws Exception {
        Journal j = rig.open(QUIET);
        assertThat(j.replayReport().transactionsReplayed()).isZero();
        long[] homes = homes(12);
        long[] expected = new long[homes.length];
        Random random = new Random(1);
        for (int tag = 1; tag <= 20; tag++) {
            List<Long> chosen = new ArrayList<>();
            for (int i = 0; i < homes.length; i++) {
                if (random.nextInt(3) == 0) {
                    chosen.add(homes[i]);
                    expected[i] = tag;
                }
            }
            if (chosen.isEmpty()) {
                continue;
            }
            writeChange(j, tag, chosen.stream().mapToLong(Long::longValue).toArray());
            if (tag % 4 == 0) {
                j.commit();
            }
        }
        j.commit();
        j.checkpoint();
        assertThat(j.logUsed()).isZero();
        assertThat(rig.readTags(rig.device, homes)).containsExactly(expected);
        rig.closeQuietly();

        Journal reopened = rig.open(QUIET);
        assertThat(reopened.replayReport().transactionsReplayed()).isZero();
        try (MetaBuffer b = rig.cache.get(homes[3])) {
            assertThat(JournalRig.tagOf(b.segment(), homes[3])).isEqualTo(expected[3]);
        }
        assertThat(rig.readTags(rig.device, homes)).containsExactly(expected);
    }

    @Test
    void committedButNotCheckpointedChangesAreReplayedAfterACrash() throws Exception {
        Journal j = rig.open(QUIET.withCheckpointPercent(100));
        long[] homes = homes(6);
        writeChange(j, 1, homes[0], homes[1]);
        writeChange(j, 2, homes[1], homes[2]);
        long seq = j.commit();
        writeChange(j, 3, homes[3], homes[4], homes[5]);
        long seq2 = j.commit();
        assertThat(seq2).isEqualTo(seq + 1);
        assertThat(rig.readTags(rig.device, homes)).containsOnly(0L); // nothing home yet
        rig.device.crash(new Random(7));
        rig.closeQuietly();
        rig.device.revive();

        Journal reopened = rig.open(QUIET);
        ReplayReport report = reopened.replayReport();
        assertThat(report.transactionsReplayed()).isEqualTo(2);
        assertThat(report.blocksReplayed()).isEqualTo(6);
        assertThat(report.firstSequence()).isEqualTo(seq);
        assertThat(report.lastSequence()).isEqualTo(seq2);
        assertThat(report.stopReason()).startsWith("end of log");
        assertThat(rig.readTags(rig.device, homes)).containsExactly(1, 2, 2, 3, 3, 3);
        // The log was reset: a second open replays nothing.
        rig.closeQuietly();
        assertThat(rig.open(QUIET).replayReport().transactionsReplayed()).isZero();
    }

    @Test
    void theCommittingTransactionLogsTheFrozenImageWhileTheNextOneChangesTheBlock() throws Exception {
        Journal j = rig.open(QUIET.withCheckpointPercent(100));
        long block = HOME;
        long seq1 = writeChange(j, 1, block, block + 1);
        CountDownLatch atCommit = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        j.setRacePoint((point, seq) -> {
            if (point.equals("commit.locked") && seq == seq1) {
                atCommit.countDown();
                try {
                    proceed.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        CompletableFuture<Long> commit1 = CompletableFuture.supplyAsync(() -> {
            try {
                return j.commit();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        atCommit.await();
        // Transaction 1 is committing and has not copied its images: change block for transaction 2.
        long seq2 = writeChange(j, 2, block);
        assertThat(seq2).isEqualTo(seq1 + 1);
        assertThat(j.frozenCopyCount()).isEqualTo(1);
        proceed.countDown();
        assertThat(commit1.get()).isEqualTo(seq1);
        j.setRacePoint(null);

        // The log holds transaction 1 with the old image of block, the cache the new one.
        List<Map<Long, Long>> log = scanLog();
        assertThat(log).hasSize(1);
        assertThat(log.getFirst()).containsEntry(block, 1L).containsEntry(block + 1, 1L);
        try (MetaBuffer b = rig.cache.get(block)) {
            assertThat(JournalRig.tagOf(b.segment(), block)).isEqualTo(2);
        }
        // Checkpointing transaction 1 writes its committed image home, not the live buffer.
        j.checkpoint();
        assertThat(rig.readTags(rig.device, new long[] {block, block + 1})).containsExactly(1, 1);

        // Transaction 2 never commits: after a crash block holds transaction 1's image.
        rig.device.crash(new Random(3));
        rig.closeQuietly();
        rig.device.revive();
        rig.open(QUIET);
        assertThat(rig.readTags(rig.device, new long[] {block, block + 1})).containsExactly(1, 1);
    }

    @Test
    void theLogWrapsAroundManyTimes() throws Exception {
        Journal j = rig.open(QUIET);
        long[] homes = homes(40);
        long[] expected = new long[homes.length];
        Random random = new Random(11);
        int transactions = 300;
        for (int tag = 1; tag <= transactions; tag++) {
            long[] chosen = new long[1 + random.nextInt(8)];
            for (int i = 0; i < chosen.length; i++) {
                int k = random.nextInt(homes.length);
                while (contains(chosen, i, homes[k])) {
                    k = (k + 1) % homes.length;
                }
                chosen[i] = homes[k];
                expected[k] = tag;
            }
            writeChange(j, tag, chosen);
            j.commit();
        }
        assertThat(j.commitCount()).isEqualTo(transactions);
        assertThat(j.checkpointCount()).isGreaterThan(5); // the log (255 slots) filled again and again
        // Crash with the newest transactions only in the log; replay must find them across the wrap.
        rig.device.crash(new Random(5));
        rig.closeQuietly();
        rig.device.revive();
        Journal reopened = rig.open(QUIET);
        assertThat(reopened.replayReport().transactionsReplayed()).isPositive();
        assertThat(rig.readTags(rig.device, homes)).containsExactly(expected);
    }

    private static boolean contains(long[] a, int n, long v) {
        for (int i = 0; i < n; i++) {
            if (a[i] == v) {
                return true;
            }
        }
        return false;
    }

    /** Leaves three committed transactions in the log and returns their log positions (start, blocks). */
    private List<long[]> threeTransactionsInTheLog() throws Exception {
        Journal j = rig.open(QUIET.withCheckpointPercent(100));
        writeChange(j, 1, HOME, HOME + 1);
        j.commit();
        writeChange(j, 2, HOME, HOME + 2);
        j.commit();
        writeChange(j, 3, HOME + 1);
        j.commit();
        rig.device.crash(new Random(1));
        rig.closeQuietly();
        rig.device.revive();
        List<long[]> positions = new ArrayList<>();
        LogScanner.scan(rig.device, rig.pool, readSuperblock(),
                tx -> positions.add(new long[] {tx.logStart(), tx.logBlocks()}));
        assertThat(positions).hasSize(3);
        return positions;
    }

    /** Rewrites log position {@code pos} after {@code change} edits it. */
    private void tamper(long pos, java.util.function.Consumer<MemorySegment> change) throws IOException {
        try (AlignedBuffer b = rig.pool.allocate(BLOCK)) {
            long offset = (J_START + 1 + pos) * BLOCK;
            rig.device.read(offset, b.segment());
            change.accept(b.segment());
            rig.device.write(offset, b.segment());
            rig.device.flush();
        }
    }

    @Test
    void aCommitChecksumMismatchStopsReplayBeforeThatTransaction() throws Exception {
        List<long[]> pos = threeTransactionsInTheLog();
        long commitOfSecond = pos.get(1)[0] + pos.get(1)[1] - 1;
        tamper(commitOfSecond, s -> {
            JournalFormat.putInt(s, JournalFormat.COMMIT_TX_CRC, JournalFormat.getInt(s, JournalFormat.COMMIT_TX_CRC) ^ 1);
            JournalFormat.seal(s); // a well-formed commit block whose transaction checksum is wrong
        });
        Journal j = rig.open(QUIET);
        assertThat(j.replayReport().transactionsReplayed()).isEqualTo(1);
        assertThat(j.replayReport().stopReason()).contains("commit checksum mismatch");
        assertThat(rig.readTags(rig.device, new long[] {HOME, HOME + 1, HOME + 2})).containsExactly(1, 1, 0);
    }

    @Test
    void aDamagedImageStopsReplayBeforeThatTransaction() throws Exception {
        List<long[]> pos = threeTransactionsInTheLog();
        long firstImageOfSecond = pos.get(1)[0] + 1;
        tamper(firstImageOfSecond, s -> s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 100, (byte) 0x5a));
        Journal j = rig.open(QUIET);
        assertThat(j.replayReport().transactionsReplayed()).isEqualTo(1);
        assertThat(j.replayReport().stopReason()).contains("checksum mismatch");
        assertThat(rig.readTags(rig.device, new long[] {HOME, HOME + 1, HOME + 2})).containsExactly(1, 1, 0);
    }

    @Test
    void aDamagedJournalSuperblockIsAClearErrorNamingTheBlock() throws Exception {
        rig.open(QUIET);
        rig.closeQuietly();
        try (AlignedBuffer b = rig.pool.allocate(BLOCK)) {
            rig.device.read(J_START * BLOCK, b.segment());
            b.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, 40, (byte) 0x77);
            rig.device.write(J_START * BLOCK, b.segment());
        }
        assertThatThrownBy(() -> rig.open(QUIET))
                .isInstanceOf(JournalCorruptException.class)
                .hasMessageContaining("block " + J_START)
                .hasMessageContaining("checksum mismatch")
                .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EUCLEAN.code()));
    }

    @Test
    void aFailedLogWriteAbortsTheJournal() throws Exception {
        Journal j = rig.open(QUIET);
        writeChange(j, 1, HOME);
        rig.device.failRange((J_START + 1) * BLOCK, (J_LENGTH - 1) * BLOCK);
        assertThatThrownBy(j::commit)
                .isInstanceOf(JournalAbortedException.class)
                .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EIO.code()))
                .hasCauseInstanceOf(ErrnoException.MediaErrorException.class);
        assertThat(j.isAborted()).isTrue();
        assertThatThrownBy(() -> j.begin(1)).isInstanceOf(JournalAbortedException.class);
        assertThatThrownBy(j::checkpoint).isInstanceOf(JournalAbortedException.class);
        rig.closeQuietly();
        rig.device.clearFaults();
        // Nothing was committed: the home block is untouched after reopening.
        rig.open(QUIET);
        assertThat(rig.readTags(rig.device, new long[] {HOME})).containsExactly(0);
    }

    @Test
    void aFullDeviceDuringCheckpointAbortsWithEnospc() throws Exception {
        Journal j = rig.open(QUIET);
        writeChange(j, 1, 900);
        j.commit();
        rig.device.limitSpace(800L * BLOCK);
        assertThatThrownBy(j::checkpoint)
                .isInstanceOf(JournalAbortedException.class)
                .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.ENOSPC.code()));
        rig.closeQuietly();
        rig.device.clearFaults();
        Journal reopened = rig.open(QUIET);
        assertThat(reopened.replayReport().transactionsReplayed()).isEqualTo(1);
        assertThat(rig.readTags(rig.device, new long[] {900})).containsExactly(1);
    }

    @Test
    void handleCreditsAreEnforced() throws Exception {
        Journal j = rig.open(QUIET);
        assertThatThrownBy(() -> j.begin(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> j.begin(j.maxTransactionBlocks() + 1)).isInstanceOf(IllegalArgumentException.class);
        try (Handle h = j.begin(2)) {
            h.getWrite(HOME).close();
            h.getWrite(HOME).close(); // the same block again costs nothing
            h.getCreate(HOME + 1).close();
            assertThat(h.remainingCredits()).isZero();
            assertThatThrownBy(() -> h.getWrite(HOME + 2)).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(() -> j.begin(1)).isInstanceOf(IllegalStateException.class); // nested
            assertThatThrownBy(j::commit).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(() -> h.getWrite(J_START + 3)).isInstanceOf(IllegalArgumentException.class);
        }
        assertThat(rig.cache.pinnedBlocks()).isEqualTo(2); // the journal's own pins until checkpointed
        j.commit();
        j.checkpoint();
        assertThat(rig.cache.pinnedBlocks()).isZero();
    }

    @Test
    void onCheckpointedRunsOnlyOnceTheTransactionIsCommittedAndCheckpointed() throws Exception {
        Journal j = rig.open(QUIET.withCheckpointPercent(100));
        AtomicInteger ran = new AtomicInteger();
        long seq = writeChange(j, 1, HOME);
        j.onCheckpointed(seq, ran::incrementAndGet);
        assertThat(ran).hasValue(0);
        j.commit();
        assertThat(ran).hasValue(0);
        long seq2 = writeChange(j, 2, HOME + 1);
        j.onCheckpointed(seq2, ran::incrementAndGet);
        j.checkpoint(); // checkpoints seq only; seq2 is still running
        assertThat(ran).hasValue(1);
        assertThat(j.lastCheckpointedSequence()).isEqualTo(seq);
        j.onCheckpointed(seq, ran::incrementAndGet); // already checkpointed: runs at once
        assertThat(ran).hasValue(2);
        j.commit();
        j.checkpoint();
        assertThat(ran).hasValue(3);
    }

    @Test
    void manyThreadsShareTransactionsUnderLogPressureWithoutDeadlock() throws Exception {
        Journal j = rig.open(QUIET.withCheckpointPercent(30));
        int threads = 4;
        int perThread = 150;
        long counterBlock = HOME + 500;
        ReentrantLock counterLock = new ReentrantLock(); // stands for a tier-5 structure lock
        long[][] lastTag = new long[threads][16];
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                fs.add(pool.submit(() -> {
                    Random random = new Random(thread);
                    for (int i = 1; i <= perThread; i++) {
                        long tag = thread * 1_000_000L + i;
                        int n = 1 + random.nextInt(6);
                        try (Handle h = j.begin(n + 1)) {
                            for (int k = 0; k < n; k++) {
                                int slot = random.nextInt(16);
                                long block = HOME + thread * 16 + slot;
                                try (MetaBuffer b = h.getWrite(block)) {
                                    JournalRig.fill(b.segment(), tag, block);
                                }
                                lastTag[thread][slot] = tag;
                            }
                            counterLock.lock();
                            try (MetaBuffer b = h.getWrite(counterBlock)) {
                                MemorySegment s = b.segment();
                                s.set(JournalFormat.LONG, 0, s.get(JournalFormat.LONG, 0) + 1);
                            } finally {
                                counterLock.unlock();
                            }
                        }
                        if (i % 37 == 0) {
                            j.commit();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(120, TimeUnit.SECONDS); // a deadlock guard, not a timing assertion
            }
        }
        assertThat(j.checkpointCount()).isPositive();
        rig.closeQuietly();
        rig.open(QUIET);
        for (int t = 0; t < threads; t++) {
            long[] blocks = new long[16];
            for (int s = 0; s < 16; s++) {
                blocks[s] = HOME + t * 16 + s;
            }
            assertThat(rig.readTags(rig.device, blocks)).containsExactly(lastTag[t]);
        }
        try (MetaBuffer b = rig.cache.get(counterBlock)) {
            assertThat(b.segment().get(JournalFormat.LONG, 0)).isEqualTo((long) threads * perThread);
        }
    }

    @Test
    void theCommitTimerCommitsInTheBackground() throws Exception {
        Journal j = rig.open(QUIET.withCommitInterval(Duration.ofMillis(1)));
        long seq = writeChange(j, 1, HOME);
        CountDownLatch committed = new CountDownLatch(1);
        j.setRacePoint((point, s) -> {
            if (point.equals("commit.done") && s == seq) {
                committed.countDown();
            }
        });
        if (j.lastCommittedSequence() < seq) {
            committed.await(); // nobody calls commit(): only the timer can get us past this
        }
        assertThat(j.lastCommittedSequence()).isGreaterThanOrEqualTo(seq);
    }
}
