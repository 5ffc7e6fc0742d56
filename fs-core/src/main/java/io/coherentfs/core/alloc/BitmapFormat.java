package io.coherentfs.core.alloc;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.btree.NodeCodec;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The on-disk format of a free-space bitmap block. One bitmap block fills one 4 KiB block and
 * follows the metadata checksum rule of every coherentfs metadata block (magic at 0, CRC32C at 4
 * over the rest of the block: {@link NodeCodec#computeChecksum}, reused, not copied).
 *
 * <h2>Layout</h2>
 * Integers are little-endian.
 * <pre>
 * offset  size  field
 *      0     4  magic      "CFBM" (bytes 43 46 42 4d; int 0x4d424643)
 *      4     4  crc32c     CRC32C of bytes [0, 4) followed by [8, 4096)
 *      8     8  self       this bitmap block's own device block number (catches misdirected IO)
 *     16     8  first      first device block covered = index * BITS_PER_BLOCK
 *     24     4  covered    device blocks covered: BITS_PER_BLOCK, fewer in the last bitmap block
 *     28     2  version    1
 *     30     2  zero
 *     32  4064  bits       bit i (byte 32 + i/8, bit i%8, least significant first) describes device
 *                          block first + i: 1 = in use, 0 = free. Bits from {@code covered} on are 0.
 * </pre>
 * So one bitmap block covers {@value #BITS_PER_BLOCK} device blocks (4064 * 8, 127 MiB of device)
 * and the bit area is 508 little-endian u64 words, the same words the in-memory
 * {@link BlockBitmap} keeps: encoding and decoding are bulk copies.
 *
 * <p>(docs/STORAGE.md sizes the region as ceil(blocks / 32768); with this 32-byte header it is
 * ceil(blocks / 32512): use {@link BitmapRegion#blocksFor}.)
 */
public final class BitmapFormat {
    public static final int BLOCK_SIZE = NodeCodec.BLOCK_SIZE;
    public static final int MAGIC = 0x4d424643; // "CFBM" on disk
    public static final int VERSION = 1;
    public static final int HEADER_SIZE = 32;
    public static final int WORDS_PER_BLOCK = (BLOCK_SIZE - HEADER_SIZE) / Long.BYTES; // 508
    public static final int BITS_PER_BLOCK = WORDS_PER_BLOCK * Long.SIZE;               // 32512

    static final int OFF_MAGIC = 0;
    static final int OFF_CRC = 4;
    static final int OFF_SELF = 8;
    static final int OFF_FIRST = 16;
    static final int OFF_COVERED = 24;
    static final int OFF_VERSION = 28;
    static final int OFF_ZERO = 30;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private BitmapFormat() {
    }

    /**
     * Writes bitmap block {@code index} of {@code region} into {@code dst} (4096 bytes) from the
     * words of {@code bitmap} and seals it.
     */
    static void encode(BitmapRegion region, long index, BlockBitmap bitmap, MemorySegment dst) {
        requireBlock(dst);
        int covered = region.coveredBy(index);
        dst.set(U32, OFF_MAGIC, MAGIC);
        dst.set(U32, OFF_CRC, 0);
        dst.set(U64, OFF_SELF, region.start() + index);
        dst.set(U64, OFF_FIRST, region.firstCovered(index));
        dst.set(U32, OFF_COVERED, covered);
        dst.set(U16, OFF_VERSION, (short) VERSION);
        dst.set(U16, OFF_ZERO, (short) 0);
        int firstWord = Math.toIntExact(index * WORDS_PER_BLOCK);
        int words = wordsCovering(covered);
        long[] src = bitmap.words();
        for (int w = 0; w < WORDS_PER_BLOCK; w++) {
            long value = w < words ? src[firstWord + w] : 0L;
            dst.set(U64, HEADER_SIZE + (long) w * Long.BYTES, value);
        }
        NodeCodec.writeChecksum(dst);
    }

    /**
     * Checks bitmap block {@code index} of {@code region} read from the device and copies its bits
     * into {@code words} (the whole device's word array).
     *
     * @throws ErrnoException EUCLEAN naming the block when magic, checksum or header are wrong, or
     *     bits past the covered range are set
     */
    static void decode(BitmapRegion region, long index, MemorySegment src, long[] words) throws ErrnoException {
        requireBlock(src);
        long self = region.start() + index;
        int covered = region.coveredBy(index);
        int magic = src.get(U32, OFF_MAGIC);
        if (magic != MAGIC) {
            throw corrupt(self, index, "bad magic 0x" + Integer.toHexString(magic) + " (not a bitmap block)");
        }
        int stored = NodeCodec.storedChecksum(src);
        int computed = NodeCodec.computeChecksum(src);
        if (stored != computed) {
            throw corrupt(self, index, "checksum mismatch (stored 0x" + Integer.toHexString(stored)
                    + ", computed 0x" + Integer.toHexString(computed) + ")");
        }
        long recordedSelf = src.get(U64, OFF_SELF);
        long first = src.get(U64, OFF_FIRST);
        int recordedCovered = src.get(U32, OFF_COVERED);
        int version = Short.toUnsignedInt(src.get(U16, OFF_VERSION));
        if (recordedSelf != self) {
            throw corrupt(self, index, "records itself as block " + recordedSelf + " (misdirected write?)");
        }
        if (first != region.firstCovered(index) || recordedCovered != covered) {
            throw corrupt(self, index, "covers " + recordedCovered + " blocks from " + first + ", expected "
                    + covered + " from " + region.firstCovered(index) + " (device size changed?)");
        }
        if (version != VERSION || src.get(U16, OFF_ZERO) != 0) {
            throw corrupt(self, index, "unknown version " + version);
        }
        int firstWord = Math.toIntExact(index * WORDS_PER_BLOCK);
        int wordCount = wordsCovering(covered);
        for (int w = 0; w < WORDS_PER_BLOCK; w++) {
            long value = src.get(U64, HEADER_SIZE + (long) w * Long.BYTES);
            long allowed = allowedMask(covered, w);
            if ((value & ~allowed) != 0) {
                throw corrupt(self, index, "bits set past the " + covered + " covered blocks (word " + w + ")");
            }
            if (w < wordCount) {
                words[firstWord + w] = value;
            }
        }
    }

    /** The bits of word {@code w} of a bitmap block that describe covered device blocks. */
    private static long allowedMask(int covered, int w) {
        long firstBit = (long) w * Long.SIZE;
        if (firstBit + Long.SIZE <= covered) {
            return -1L;
        }
        if (firstBit >= covered) {
            return 0L;
        }
        return (1L << (covered - firstBit)) - 1;
    }

    private static int wordsCovering(int covered) {
        return (covered + Long.SIZE - 1) / Long.SIZE;
    }

    private static ErrnoException corrupt(long self, long index, String what) {
        return new ErrnoException(Errno.EUCLEAN, "bitmap", "bitmap block " + self + " (index " + index + "): " + what);
    }

    private static void requireBlock(MemorySegment block) {
        if (block.byteSize() != BLOCK_SIZE) {
            throw new IllegalArgumentException("a bitmap block is " + BLOCK_SIZE + " bytes, got " + block.byteSize());
        }
    }
}
