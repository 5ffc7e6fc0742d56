package io.coherentfs.core.journal;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The journal's on-disk layout: constants, field offsets, and the encode/decode/checksum helpers
 * shared by the writer ({@link Journal}) and the reader ({@link LogScanner}). All integers are
 * little-endian; every block is {@value #BLOCK_SIZE} bytes.
 *
 * <h2>Region</h2>
 * The caller gives the journal a region {@code [start, start + length)} of filesystem blocks.
 * Block {@code start} is the <b>journal superblock</b>; blocks {@code start + 1 ..} form the
 * <b>log</b>, a circular array of {@code L = length - 1} slots addressed by a <em>log position</em>
 * {@code 0 .. L-1} (device block = {@code start + 1 + position}).
 *
 * <h2>Common header (superblock, descriptor and commit blocks)</h2>
 * <pre>
 *   0  u32  magic        0x4E524A43 ("CJRN" read as bytes)
 *   4  u32  blockType    1 = superblock, 2 = descriptor, 3 = commit
 *   8  u64  sequence     superblock: first sequence expected at the tail; else the transaction's
 *  16  u64  journalId    random, chosen by {@code format}: blocks of an older format never match
 *  ...      type specific
 * 4092 u32  blockCrc     CRC32C of bytes [0, 4092) (descriptor and commit; the superblock differs)
 * </pre>
 *
 * <h2>Superblock (type 1, at block {@code start})</h2>
 * <pre>
 *  24  u32  version      {@value #VERSION}
 *  28  u32  blockSize    4096
 *  32  u64  regionStart  start (device block number)
 *  40  u64  regionLength length (blocks, superblock included)
 *  48  u64  tail         log position of the first transaction to replay (the oldest live one)
 *  56  u64  formatTime   epoch milliseconds of {@code format}, for humans
 *  60 .. 507               zero
 * 508  u32  superCrc     CRC32C of bytes [0, 508); bytes 512 .. 4095 are zero and unchecked
 * </pre>
 * Unlike the other journal blocks the superblock keeps everything, checksum included, in its first
 * 512 bytes: a device writes a sector atomically, so a torn superblock write (power cut while the
 * tail advances) leaves either the old or the new superblock, never a checksum failure.
 * The log is empty when the transaction at {@code tail} does not carry {@code sequence} (it is
 * stale, from an older lap, from an abandoned attempt, or never written).
 *
 * <h2>A transaction in the log</h2>
 * {@code D} descriptor blocks, then {@code N} block images, then one commit block, in consecutive
 * log positions (wrapping from {@code L-1} to {@code 0}); {@code D = ceil(N / TAGS_PER_DESCRIPTOR)},
 * {@code N >= 1}. The descriptors come first so that a reader knows the whole transaction's
 * shape after reading them.
 * <pre>
 * Descriptor (type 2):
 *  24  u32  descriptorIndex   0 .. D-1
 *  28  u32  descriptorCount   D
 *  32  u32  imageCount        N (whole transaction)
 *  36  u32  tagCount          tags in this block (TAGS_PER_DESCRIPTOR except in the last one)
 *  40 .. 63                   zero
 *  64  tag[tagCount], 16 bytes each:
 *        0 u64 homeBlock      device block number the image belongs to
 *        8 u32 flags          0 (reserved; e.g. for a future "revoked" or "escaped" bit)
 *       12 u32 imageCrc       CRC32C of the 4096-byte image
 *
 * Image: the raw 4096 bytes of the metadata block, no header (a metadata block has no room for
 *        one). Images are only ever interpreted through a descriptor, never recognised by content,
 *        so no escaping of magic numbers is needed; a stale image is caught by its tag CRC and by
 *        the commit CRC.
 *
 * Commit (type 3):
 *  24  u32  imageCount        N
 *  28  u32  descriptorCount   D
 *  32  u32  transactionCrc    CRC32C over the D descriptor blocks and the N images, in log order
 *  36  u32  zero
 *  40  u64  commitTime        epoch milliseconds, for humans
 * </pre>
 * A transaction is valid (replayable) iff every descriptor and the commit block have a good block
 * CRC, magic, journalId and the expected sequence, the counts agree, and transactionCrc and every
 * imageCrc match.
 */
final class JournalFormat {
    private JournalFormat() {}

    static final int BLOCK_SIZE = 4096;
    static final int MAGIC = 0x4E524A43;
    static final int VERSION = 1;

    static final int TYPE_SUPERBLOCK = 1;
    static final int TYPE_DESCRIPTOR = 2;
    static final int TYPE_COMMIT = 3;

    // Common header.
    static final long OFF_MAGIC = 0;
    static final long OFF_TYPE = 4;
    static final long OFF_SEQUENCE = 8;
    static final long OFF_JOURNAL_ID = 16;
    static final long OFF_BLOCK_CRC = 4092;

    // Superblock.
    static final long SB_VERSION = 24;
    static final long SB_BLOCK_SIZE = 28;
    static final long SB_REGION_START = 32;
    static final long SB_REGION_LENGTH = 40;
    static final long SB_TAIL = 48;
    static final long SB_FORMAT_TIME = 56;
    static final long SB_CRC = 508;

    // Descriptor.
    static final long DESC_INDEX = 24;
    static final long DESC_COUNT = 28;
    static final long DESC_IMAGE_COUNT = 32;
    static final long DESC_TAG_COUNT = 36;
    static final long DESC_TAGS = 64;
    static final int TAG_SIZE = 16;
    static final int TAGS_PER_DESCRIPTOR = (int) ((OFF_BLOCK_CRC - DESC_TAGS) / TAG_SIZE); // 251

    // Commit.
    static final long COMMIT_IMAGE_COUNT = 24;
    static final long COMMIT_DESC_COUNT = 28;
    static final long COMMIT_TX_CRC = 32;
    static final long COMMIT_TIME = 40;

    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Descriptor blocks a transaction of {@code images} images needs. */
    static int descriptorsFor(int images) {
        return (images + TAGS_PER_DESCRIPTOR - 1) / TAGS_PER_DESCRIPTOR;
    }

    /** Log slots a transaction of {@code images} images occupies: descriptors, images, commit. */
    static int logBlocksFor(int images) {
        return images == 0 ? 0 : descriptorsFor(images) + images + 1;
    }

    static int getInt(MemorySegment s, long off) {
        return s.get(INT, off);
    }

    static long getLong(MemorySegment s, long off) {
        return s.get(LONG, off);
    }

    static void putInt(MemorySegment s, long off, int v) {
        s.set(INT, off, v);
    }

    static void putLong(MemorySegment s, long off, long v) {
        s.set(LONG, off, v);
    }

    /** Zeroes {@code block}, then writes the common header (not the block CRC). */
    static void header(MemorySegment block, int type, long sequence, long journalId) {
        block.fill((byte) 0);
        putInt(block, OFF_MAGIC, MAGIC);
        putInt(block, OFF_TYPE, type);
        putLong(block, OFF_SEQUENCE, sequence);
        putLong(block, OFF_JOURNAL_ID, journalId);
    }

    /** Writes the block CRC of a 4096-byte block. */
    static void seal(MemorySegment block) {
        putInt(block, OFF_BLOCK_CRC, crc(block.asSlice(0, OFF_BLOCK_CRC)));
    }

    static boolean blockCrcOk(MemorySegment block) {
        return getInt(block, OFF_BLOCK_CRC) == crc(block.asSlice(0, OFF_BLOCK_CRC));
    }

    /**
     * True when {@code block} is a sealed journal block of {@code type} for {@code journalId} and
     * {@code sequence}.
     */
    static boolean isBlock(MemorySegment block, int type, long sequence, long journalId) {
        return getInt(block, OFF_MAGIC) == MAGIC
                && getInt(block, OFF_TYPE) == type
                && getLong(block, OFF_SEQUENCE) == sequence
                && getLong(block, OFF_JOURNAL_ID) == journalId
                && blockCrcOk(block);
    }

    static int crc(MemorySegment s) {
        CRC32C c = new CRC32C();
        c.update(s.asByteBuffer());
        return (int) c.getValue();
    }

    static void update(CRC32C c, MemorySegment s) {
        c.update(s.asByteBuffer());
    }

    /** The journal superblock's decoded fields. */
    record Superblock(long journalId, long regionStart, long regionLength, long tail, long firstSequence,
            long formatTime) {

        void encode(MemorySegment block) {
            header(block, TYPE_SUPERBLOCK, firstSequence, journalId);
            putInt(block, SB_VERSION, VERSION);
            putInt(block, SB_BLOCK_SIZE, BLOCK_SIZE);
            putLong(block, SB_REGION_START, regionStart);
            putLong(block, SB_REGION_LENGTH, regionLength);
            putLong(block, SB_TAIL, tail);
            putLong(block, SB_FORMAT_TIME, formatTime);
            putInt(block, SB_CRC, crc(block.asSlice(0, SB_CRC)));
        }

        Superblock withTail(long newTail, long newFirstSequence) {
            return new Superblock(journalId, regionStart, regionLength, newTail, newFirstSequence, formatTime);
        }

        /**
         * Decodes and checks a superblock read from device block {@code blockNo}.
         *
         * @throws JournalCorruptException naming the block and what is wrong
         */
        static Superblock decode(MemorySegment block, long blockNo) throws JournalCorruptException {
            if (getInt(block, OFF_MAGIC) != MAGIC || getInt(block, OFF_TYPE) != TYPE_SUPERBLOCK) {
                throw new JournalCorruptException(blockNo, String.format(
                        "not a journal superblock (magic 0x%08x, type %d; expected magic 0x%08x, type %d)",
                        getInt(block, OFF_MAGIC), getInt(block, OFF_TYPE), MAGIC, TYPE_SUPERBLOCK));
            }
            int stored = getInt(block, SB_CRC);
            int computed = crc(block.asSlice(0, SB_CRC));
            if (stored != computed) {
                throw new JournalCorruptException(blockNo, String.format(
                        "journal superblock checksum mismatch (stored 0x%08x, computed 0x%08x)", stored, computed));
            }
            int version = getInt(block, SB_VERSION);
            if (version != VERSION || getInt(block, SB_BLOCK_SIZE) != BLOCK_SIZE) {
                throw new JournalCorruptException(blockNo, "unsupported journal version " + version
                        + " / block size " + getInt(block, SB_BLOCK_SIZE));
            }
            return new Superblock(getLong(block, OFF_JOURNAL_ID), getLong(block, SB_REGION_START),
                    getLong(block, SB_REGION_LENGTH), getLong(block, SB_TAIL), getLong(block, OFF_SEQUENCE),
                    getLong(block, SB_FORMAT_TIME));
        }
    }
}
