package io.coherentfs.core.journal;

import static io.coherentfs.core.journal.JournalFormat.BLOCK_SIZE;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.core.journal.JournalFormat.Superblock;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.zip.CRC32C;

/**
 * Reads the log from the superblock's tail and hands every valid transaction, in sequence order,
 * to a visitor; stops at the first block that does not continue the log (see {@link JournalFormat}
 * for what "valid" means). Used by replay and by tests/fsck to inspect a log. Single-threaded, no
 * locks; the journal must not be running on the region.
 */
final class LogScanner {
    private LogScanner() {}

    /** One valid transaction as read from the log; {@link #image} is valid during the visit only. */
    record ScannedTransaction(long sequence, long logStart, int logBlocks, long[] homes, MemorySegment images) {
        MemorySegment image(int i) {
            return images.asSlice((long) i * BLOCK_SIZE, BLOCK_SIZE);
        }
    }

    @FunctionalInterface
    interface Visitor {
        void visit(ScannedTransaction tx) throws IOException;
    }

    /**
     * @param transactions valid transactions visited
     * @param images       images in them
     * @param lastSequence the last valid transaction's sequence, or the first expected minus one
     * @param end          log position after the last valid transaction
     * @param stopReason   why the scan stopped
     */
    record Result(int transactions, long images, long lastSequence, long end, String stopReason) {}

    static Result scan(BlockDevice device, AlignedBufferPool pool, Superblock sb, Visitor visitor) throws IOException {
        long logSize = sb.regionLength() - 1;
        long logBase = sb.regionStart() + 1;
        long pos = sb.tail();
        long seq = sb.firstSequence();
        long consumed = 0;
        int count = 0;
        long images = 0;
        int maxBlocks = (int) Math.min(pool.maxBufferSize() / BLOCK_SIZE, logSize);
        String stop;
        try (AlignedBuffer first = pool.allocate(BLOCK_SIZE)) {
            while (true) {
                MemorySegment d0 = first.segment();
                readLog(device, logBase, logSize, pos, d0);
                if (!JournalFormat.isBlock(d0, JournalFormat.TYPE_DESCRIPTOR, seq, sb.journalId())) {
                    stop = describeNonDescriptor(d0, seq, sb.journalId(), pos);
                    break;
                }
                int index = JournalFormat.getInt(d0, JournalFormat.DESC_INDEX);
                int descriptors = JournalFormat.getInt(d0, JournalFormat.DESC_COUNT);
                int n = JournalFormat.getInt(d0, JournalFormat.DESC_IMAGE_COUNT);
                if (index != 0 || n < 1 || descriptors != JournalFormat.descriptorsFor(n)) {
                    stop = "transaction " + seq + ": descriptor at log position " + pos + " has inconsistent counts";
                    break;
                }
                int total = JournalFormat.logBlocksFor(n);
                if (total > maxBlocks || consumed + total > logSize) {
                    stop = "transaction " + seq + ": " + total + " blocks do not fit the log";
                    break;
                }
                try (AlignedBuffer whole = pool.allocate((long) total * BLOCK_SIZE)) {
                    MemorySegment all = whole.segment();
                    readLog(device, logBase, logSize, pos, all);
                    String problem = validate(all, seq, sb.journalId(), descriptors, n);
                    if (problem != null) {
                        stop = "transaction " + seq + " at log position " + pos + ": " + problem;
                        break;
                    }
                    long[] homes = new long[n];
                    for (int i = 0; i < n; i++) {
                        MemorySegment d = all.asSlice((long) (i / JournalFormat.TAGS_PER_DESCRIPTOR) * BLOCK_SIZE, BLOCK_SIZE);
                        long tag = JournalFormat.DESC_TAGS + (long) (i % JournalFormat.TAGS_PER_DESCRIPTOR) * JournalFormat.TAG_SIZE;
                        homes[i] = JournalFormat.getLong(d, tag);
                    }
                    visitor.visit(new ScannedTransaction(seq, pos, total, homes,
                            all.asSlice((long) descriptors * BLOCK_SIZE, (long) n * BLOCK_SIZE)));
                }
                count++;
                images += n;
                consumed += total;
                pos = (pos + total) % logSize;
                seq++;
            }
        }
        return new Result(count, images, seq - 1, pos, stop);
    }

    /** Checks descriptors, commit block and checksums of a whole transaction read into {@code all}. */
    private static String validate(MemorySegment all, long seq, long journalId, int descriptors, int n) {
        CRC32C txCrc = new CRC32C();
        for (int d = 0; d < descriptors; d++) {
            MemorySegment desc = all.asSlice((long) d * BLOCK_SIZE, BLOCK_SIZE);
            if (!JournalFormat.isBlock(desc, JournalFormat.TYPE_DESCRIPTOR, seq, journalId)) {
                return "descriptor " + d + " is missing or damaged";
            }
            int tags = JournalFormat.getInt(desc, JournalFormat.DESC_TAG_COUNT);
            int expectedTags = Math.min(JournalFormat.TAGS_PER_DESCRIPTOR, n - d * JournalFormat.TAGS_PER_DESCRIPTOR);
            if (JournalFormat.getInt(desc, JournalFormat.DESC_INDEX) != d
                    || JournalFormat.getInt(desc, JournalFormat.DESC_COUNT) != descriptors
                    || JournalFormat.getInt(desc, JournalFormat.DESC_IMAGE_COUNT) != n || tags != expectedTags) {
                return "descriptor " + d + " has inconsistent counts";
            }
            JournalFormat.update(txCrc, desc);
        }
        for (int i = 0; i < n; i++) {
            MemorySegment image = all.asSlice((long) (descriptors + i) * BLOCK_SIZE, BLOCK_SIZE);
            JournalFormat.update(txCrc, image);
            MemorySegment desc = all.asSlice((long) (i / JournalFormat.TAGS_PER_DESCRIPTOR) * BLOCK_SIZE, BLOCK_SIZE);
            long tag = JournalFormat.DESC_TAGS + (long) (i % JournalFormat.TAGS_PER_DESCRIPTOR) * JournalFormat.TAG_SIZE;
            if (JournalFormat.getInt(desc, tag + 12) != JournalFormat.crc(image)) {
                return "image " + i + " (home block " + JournalFormat.getLong(desc, tag) + ") checksum mismatch";
            }
        }
        MemorySegment commit = all.asSlice((long) (descriptors + n) * BLOCK_SIZE, BLOCK_SIZE);
        if (!JournalFormat.isBlock(commit, JournalFormat.TYPE_COMMIT, seq, journalId)) {
            return "commit block is missing or damaged (torn transaction)";
        }
        if (JournalFormat.getInt(commit, JournalFormat.COMMIT_IMAGE_COUNT) != n
                || JournalFormat.getInt(commit, JournalFormat.COMMIT_DESC_COUNT) != descriptors) {
            return "commit block counts disagree with the descriptors";
        }
        if (JournalFormat.getInt(commit, JournalFormat.COMMIT_TX_CRC) != (int) txCrc.getValue()) {
            return "commit checksum mismatch";
        }
        return null;
    }

    private static String describeNonDescriptor(MemorySegment b, long seq, long journalId, long pos) {
        if (JournalFormat.getInt(b, JournalFormat.OFF_MAGIC) != JournalFormat.MAGIC
                || JournalFormat.getLong(b, JournalFormat.OFF_JOURNAL_ID) != journalId) {
            return "end of log (no journal block at log position " + pos + ")";
        }
        long found = JournalFormat.getLong(b, JournalFormat.OFF_SEQUENCE);
        if (found != seq) {
            return "end of log (stale block of sequence " + found + " at log position " + pos + ", expected " + seq + ")";
        }
        if (!JournalFormat.blockCrcOk(b)) {
            return "transaction " + seq + ": descriptor at log position " + pos + " is damaged (torn transaction)";
        }
        return "end of log (block of type " + JournalFormat.getInt(b, JournalFormat.OFF_TYPE) + " at log position " + pos + ")";
    }

    /** Reads {@code dst.byteSize()} bytes of log starting at position {@code pos}, wrapping. */
    static void readLog(BlockDevice device, long logBase, long logSize, long pos, MemorySegment dst) throws IOException {
        long blocks = dst.byteSize() / BLOCK_SIZE;
        long firstRun = Math.min(blocks, logSize - pos);
        device.read((logBase + pos) * BLOCK_SIZE, dst.asSlice(0, firstRun * BLOCK_SIZE));
        if (firstRun < blocks) {
            device.read(logBase * BLOCK_SIZE, dst.asSlice(firstRun * BLOCK_SIZE));
        }
    }

    /** Writes {@code src} to the log starting at position {@code pos}, wrapping. */
    static void writeLog(BlockDevice device, long logBase, long logSize, long pos, MemorySegment src) throws IOException {
        long blocks = src.byteSize() / BLOCK_SIZE;
        long firstRun = Math.min(blocks, logSize - pos);
        device.write((logBase + pos) * BLOCK_SIZE, src.asSlice(0, firstRun * BLOCK_SIZE));
        if (firstRun < blocks) {
            device.write(logBase * BLOCK_SIZE, src.asSlice(firstRun * BLOCK_SIZE));
        }
    }
}
