package io.coherentfs.core.btree;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The on-disk format of a B+tree node, and the checksum rule every coherentfs metadata block
 * follows. One node fills one 4 KiB block.
 *
 * <h2>Node layout</h2>
 * Header integers are little-endian; keys are opaque byte strings compared unsigned; values are
 * opaque.
 * <pre>
 * offset  size  field
 *      0     4  magic       "CFBT" (bytes 43 46 42 54; int 0x54424643)
 *      4     4  crc32c      CRC32C of bytes [0, 4) followed by [8, 4096): the whole block except
 *                           this field, including the zeroed tail
 *      8     8  tree id     owner of the node (e.g. the inode number of an extent map); a node of
 *                           another tree is refused
 *     16     8  block       this node's own block number (catches misdirected writes and reads)
 *     24     1  level       0 = leaf; a child's level is its parent's minus one
 *     25     1  version     1
 *     26     2  count       entries in the node
 *     28     2  key size    bytes per key (K)
 *     30     2  value size  bytes per leaf value (V), recorded in internal nodes too
 *     32        entries     count entries, packed, in strictly increasing key order
 *                           leaf:     key[K] value[V]
 *                           internal: key[K] child[8] (u64 little-endian block number)
 *   32+count*entrySize .. 4095   zero
 * </pre>
 *
 * <h2>Internal nodes</h2>
 * Entry i of an internal node points at child i, whose subtree holds exactly the keys in
 * {@code [key[i], key[i+1])} (the last child: up to the node's own upper bound). {@code key[0]}
 * equals the node's lower bound: the key its parent holds for it, or the all-zero key for the
 * root and every node on the leftmost path. Lookups never compare against {@code key[0]}; keeping
 * it exact lets internal nodes merge and share entries by plain copying. A leaf's lowest key may
 * be greater than its parent's key for it (deletes do not update separators).
 *
 * <h2>Checksums (who seals)</h2>
 * The tree computes the checksum: it {@linkplain #seal seals} every node it changed before it
 * hands the block back to its {@link NodeStore} with {@code release}, and it {@linkplain #check
 * checks} magic, checksum and header of every block it obtains from the store before reading any
 * entry. A store may (and {@link DeviceNodeStore} does) verify {@link #isSealed} before it writes a
 * block out. Blocks that are not tree nodes but follow the same rule (magic at 0, CRC32C at 4 over
 * the rest) can use {@link #computeChecksum}/{@link #isSealed} too.
 */
public final class NodeCodec {
    public static final int BLOCK_SIZE = 4096;
    public static final int MAGIC = 0x54424643; // "CFBT" on disk
    public static final int VERSION = 1;
    public static final int HEADER_SIZE = 32;
    public static final int PAYLOAD_SIZE = BLOCK_SIZE - HEADER_SIZE;
    public static final int CHILD_POINTER_SIZE = 8;
    /** Levels 0..MAX_LEVEL exist; a header claiming more is corrupt. */
    public static final int MAX_LEVEL = 31;

    static final int OFF_MAGIC = 0;
    static final int OFF_CRC = 4;
    static final int OFF_TREE_ID = 8;
    static final int OFF_BLOCK = 16;
    static final int OFF_LEVEL = 24;
    static final int OFF_VERSION = 25;
    static final int OFF_COUNT = 26;
    static final int OFF_KEY_SIZE = 28;
    static final int OFF_VALUE_SIZE = 30;

    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private NodeCodec() {
    }

    /** CRC32C of the block with the checksum field (bytes 4..7) left out. */
    public static int computeChecksum(MemorySegment block) {
        requireBlock(block);
        CRC32C crc = new CRC32C();
        ByteBuffer bb = block.asByteBuffer();
        crc.update(bb.slice(0, OFF_CRC));
        crc.update(bb.slice(OFF_CRC + 4, BLOCK_SIZE - OFF_CRC - 4));
        return (int) crc.getValue();
    }

    /** The checksum recorded in the block. */
    public static int storedChecksum(MemorySegment block) {
        return block.get(U32, OFF_CRC);
    }

    /** Writes the block's checksum; the rest of the block must be final. */
    public static void writeChecksum(MemorySegment block) {
        block.set(U32, OFF_CRC, computeChecksum(block));
    }

    /** True when the recorded checksum matches the content (for any block following the rule). */
    public static boolean isSealed(MemorySegment block) {
        return storedChecksum(block) == computeChecksum(block);
    }

    /** The magic number at offset 0 (to tell node blocks from other metadata blocks). */
    public static int magic(MemorySegment block) {
        return block.get(U32, OFF_MAGIC);
    }

    /** Level of a node whose header was already checked. */
    static int level(MemorySegment node) {
        return node.get(ValueLayout.JAVA_BYTE, OFF_LEVEL) & 0xff;
    }

    static int count(MemorySegment node) {
        return Short.toUnsignedInt(node.get(U16, OFF_COUNT));
    }

    static void setCount(MemorySegment node, int count) {
        node.set(U16, OFF_COUNT, (short) count);
    }

    /**
     * Writes a fresh, empty node header into {@code node} (the rest of the block is left as it was;
     * {@link #seal} zeroes it).
     */
    static void format(MemorySegment node, long block, BTreeSpec spec, long treeId, int level) {
        node.set(U32, OFF_MAGIC, MAGIC);
        node.set(U32, OFF_CRC, 0);
        node.set(U64, OFF_TREE_ID, treeId);
        node.set(U64, OFF_BLOCK, block);
        node.set(ValueLayout.JAVA_BYTE, OFF_LEVEL, (byte) level);
        node.set(ValueLayout.JAVA_BYTE, OFF_VERSION, (byte) VERSION);
        setCount(node, 0);
        node.set(U16, OFF_KEY_SIZE, (short) spec.keySize());
        node.set(U16, OFF_VALUE_SIZE, (short) spec.valueSize());
    }

    /**
     * Makes a changed node durable-ready: zeroes the bytes after the last entry and writes the
     * checksum. The header must be valid (it was {@linkplain #format formatted} or {@linkplain
     * #check checked}).
     */
    static void seal(MemorySegment node, BTreeSpec spec) {
        int level = level(node);
        long used = HEADER_SIZE + (long) count(node) * spec.entrySize(level);
        if (used < BLOCK_SIZE) {
            node.asSlice(used, BLOCK_SIZE - used).fill((byte) 0);
        }
        writeChecksum(node);
    }

    /**
     * Checks everything a reader relies on before it interprets a node: magic, checksum, the
     * node's own block number, owner, version, key and value sizes, level and entry count.
     *
     * @param expectedLevel the level the parent implies, or -1 when unknown (the root)
     * @throws CorruptNodeException naming {@code block} and what is wrong
     */
    public static void check(long block, MemorySegment node, BTreeSpec spec, long treeId, int expectedLevel)
            throws CorruptNodeException {
        requireBlock(node);
        int magic = magic(node);
        if (magic != MAGIC) {
            throw new CorruptNodeException(block, String.format("bad magic 0x%08x, expected 0x%08x (%s)",
                    magic, MAGIC, magic == 0 && isAllZero(node) ? "the block is all zeros: never written?"
                            : "not a B+tree node"));
        }
        int stored = storedChecksum(node);
        int computed = computeChecksum(node);
        if (stored != computed) {
            throw new CorruptNodeException(block,
                    String.format("checksum mismatch: stored 0x%08x, computed 0x%08x", stored, computed));
        }
        long self = node.get(U64, OFF_BLOCK);
        if (self != block) {
            throw new CorruptNodeException(block, "header names block " + self
                    + " (misdirected write, or a pointer to the wrong block)");
        }
        long owner = node.get(U64, OFF_TREE_ID);
        if (owner != treeId) {
            throw new CorruptNodeException(block, "belongs to tree " + owner + ", expected tree " + treeId);
        }
        int version = node.get(ValueLayout.JAVA_BYTE, OFF_VERSION) & 0xff;
        if (version != VERSION) {
            throw new CorruptNodeException(block, "node format version " + version + ", expected " + VERSION);
        }
        int keySize = Short.toUnsignedInt(node.get(U16, OFF_KEY_SIZE));
        int valueSize = Short.toUnsignedInt(node.get(U16, OFF_VALUE_SIZE));
        if (keySize != spec.keySize() || valueSize != spec.valueSize()) {
            throw new CorruptNodeException(block, "key/value size " + keySize + "/" + valueSize
                    + ", expected " + spec.keySize() + "/" + spec.valueSize());
        }
        int level = level(node);
        if (level > MAX_LEVEL || (expectedLevel >= 0 && level != expectedLevel)) {
            throw new CorruptNodeException(block, "level " + level + ", expected "
                    + (expectedLevel >= 0 ? expectedLevel : "at most " + MAX_LEVEL));
        }
        int count = count(node);
        int fits = PAYLOAD_SIZE / spec.entrySize(level);
        if (count > fits) {
            throw new CorruptNodeException(block, "entry count " + count + " exceeds the " + fits
                    + " that fit in a level-" + level + " node");
        }
    }

    private static boolean isAllZero(MemorySegment block) {
        for (long off = 0; off < BLOCK_SIZE; off += 8) {
            if (block.get(ValueLayout.JAVA_LONG_UNALIGNED, off) != 0) {
                return false;
            }
        }
        return true;
    }

    private static void requireBlock(MemorySegment block) {
        if (block.byteSize() != BLOCK_SIZE) {
            throw new IllegalArgumentException("a metadata block is " + BLOCK_SIZE + " bytes, got " + block.byteSize());
        }
    }
}
