package io.coherentfs.core.format;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.btree.NodeCodec;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.UUID;

/**
 * The superblock: block 0 of every coherentfs image, with a backup copy in the last block.
 * It follows the metadata checksum rule of {@link NodeCodec} (magic at 0, CRC32C at 4 over the
 * rest of the block). Integers are little-endian.
 *
 * <pre>
 * offset size field
 *      0    4 magic "CFSB"
 *      4    4 crc32c of bytes [0,4) and [8,4096)
 *      8    4 format version (1)
 *     12    4 incompatible features (a reader that does not know a bit must refuse the image)
 *     16    4 read-only-compatible features (unknown bits: mount read-only only)
 *     20    4 compatible features (unknown bits are harmless)
 *     24   16 UUID (most significant half first)
 *     40   64 label, UTF-8, NUL-padded
 *    104    4 block size (4096)
 *    108    4 state: bit 0 clean (unmounted cleanly), bit 1 errors found
 *    112    8 block count
 *    120    8 journal start      128 8 journal blocks
 *    136    8 bitmap start       144 8 bitmap blocks
 *    152    8 inode tree root    160 8 directory tree root
 *    168    8 xattr tree root    176 8 orphan tree root
 *    184    8 next inode number  192 8 root directory inode
 *    200    8 created (ns since the epoch)
 *    208    8 last mounted (ns)  216 8 last written (ns)
 *    224    8 mount count        232 8 next inode generation
 *    240      zero to the end of the block
 * </pre>
 *
 * <p>The superblock is ordinary journaled metadata at runtime (tree roots and counters change
 * with transactions); the backup is written by mkfs and at clean unmount, and is what
 * {@link #decode} falls back to when block 0 is unreadable.
 */
public record Superblock(
        int version,
        int incompatFeatures,
        int roCompatFeatures,
        int compatFeatures,
        UUID uuid,
        String label,
        int state,
        Layout layout,
        long inodeTreeRoot,
        long direntTreeRoot,
        long xattrTreeRoot,
        long orphanTreeRoot,
        long nextInode,
        long rootInode,
        long createdNanos,
        long lastMountedNanos,
        long lastWrittenNanos,
        long mountCount,
        long nextGeneration) {

    public static final int MAGIC = 0x42534643; // "CFSB" on disk
    public static final int VERSION = 1;
    public static final int STATE_CLEAN = 1;
    public static final int STATE_ERRORS = 2;
    /** Feature bits this build understands. */
    public static final int KNOWN_INCOMPAT = 0;
    public static final int KNOWN_RO_COMPAT = 0;
    public static final int LABEL_BYTES = 64;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public boolean isClean() {
        return (state & STATE_CLEAN) != 0;
    }

    public Superblock withState(int newState) {
        Builder b = toBuilder();
        b.state = newState;
        return b.build();
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** A mutable copy, for changing a few fields. */
    public static final class Builder {
        public int version, incompatFeatures, roCompatFeatures, compatFeatures, state;
        public UUID uuid;
        public String label;
        public Layout layout;
        public long inodeTreeRoot, direntTreeRoot, xattrTreeRoot, orphanTreeRoot, nextInode, rootInode;
        public long createdNanos, lastMountedNanos, lastWrittenNanos, mountCount, nextGeneration;

        Builder(Superblock s) {
            version = s.version; incompatFeatures = s.incompatFeatures; roCompatFeatures = s.roCompatFeatures;
            compatFeatures = s.compatFeatures; uuid = s.uuid; label = s.label; state = s.state; layout = s.layout;
            inodeTreeRoot = s.inodeTreeRoot; direntTreeRoot = s.direntTreeRoot; xattrTreeRoot = s.xattrTreeRoot;
            orphanTreeRoot = s.orphanTreeRoot; nextInode = s.nextInode; rootInode = s.rootInode;
            createdNanos = s.createdNanos; lastMountedNanos = s.lastMountedNanos; lastWrittenNanos = s.lastWrittenNanos;
            mountCount = s.mountCount; nextGeneration = s.nextGeneration;
        }

        public Superblock build() {
            return new Superblock(version, incompatFeatures, roCompatFeatures, compatFeatures, uuid, label, state,
                    layout, inodeTreeRoot, direntTreeRoot, xattrTreeRoot, orphanTreeRoot, nextInode, rootInode,
                    createdNanos, lastMountedNanos, lastWrittenNanos, mountCount, nextGeneration);
        }
    }

    /** Writes this superblock, sealed, into {@code block} (4096 bytes). */
    public void encode(MemorySegment block) {
        if (block.byteSize() != Layout.BLOCK_SIZE) {
            throw new IllegalArgumentException("a superblock is " + Layout.BLOCK_SIZE + " bytes");
        }
        byte[] labelBytes = label.getBytes(StandardCharsets.UTF_8);
        if (labelBytes.length > LABEL_BYTES) {
            throw new IllegalArgumentException("label longer than " + LABEL_BYTES + " bytes of UTF-8: " + label);
        }
        block.fill((byte) 0);
        block.set(U32, 0, MAGIC);
        block.set(U32, 8, version);
        block.set(U32, 12, incompatFeatures);
        block.set(U32, 16, roCompatFeatures);
        block.set(U32, 20, compatFeatures);
        block.set(U64, 24, uuid.getMostSignificantBits());
        block.set(U64, 32, uuid.getLeastSignificantBits());
        MemorySegment.copy(labelBytes, 0, block, ValueLayout.JAVA_BYTE, 40, labelBytes.length);
        block.set(U32, 104, Layout.BLOCK_SIZE);
        block.set(U32, 108, state);
        long[] fields = {layout.blockCount(), layout.journalStart(), layout.journalBlocks(), layout.bitmapStart(),
                layout.bitmapBlocks(), inodeTreeRoot, direntTreeRoot, xattrTreeRoot, orphanTreeRoot, nextInode,
                rootInode, createdNanos, lastMountedNanos, lastWrittenNanos, mountCount, nextGeneration};
        for (int i = 0; i < fields.length; i++) {
            block.set(U64, 112 + 8L * i, fields[i]);
        }
        block.set(U32, 4, NodeCodec.computeChecksum(block));
    }

    /**
     * Reads a superblock from {@code block}, read at block number {@code where} of the device.
     *
     * @throws ErrnoException EUCLEAN naming the block when it is not a valid coherentfs
     *     superblock (wrong magic, checksum, version, geometry), EOPNOTSUPP for unknown
     *     incompatible features
     */
    public static Superblock decode(MemorySegment block, long where) throws ErrnoException {
        if (block.get(U32, 0) != MAGIC) {
            throw corrupt(where, "not a coherentfs superblock (magic 0x"
                    + Integer.toHexString(block.get(U32, 0)) + ")");
        }
        int stored = block.get(U32, 4);
        int computed = NodeCodec.computeChecksum(block);
        if (stored != computed) {
            throw corrupt(where, String.format("checksum mismatch: stored 0x%08x, computed 0x%08x", stored, computed));
        }
        int version = block.get(U32, 8);
        if (version != VERSION) {
            throw corrupt(where, "format version " + version + ", this build reads version " + VERSION);
        }
        int incompat = block.get(U32, 12);
        if ((incompat & ~KNOWN_INCOMPAT) != 0) {
            throw new ErrnoException(Errno.EOPNOTSUPP, "mount", "superblock at block " + where
                    + " has incompatible features 0x" + Integer.toHexString(incompat) + " this build does not know");
        }
        if (block.get(U32, 104) != Layout.BLOCK_SIZE) {
            throw corrupt(where, "block size " + block.get(U32, 104) + ", expected " + Layout.BLOCK_SIZE);
        }
        long[] f = new long[16];
        for (int i = 0; i < f.length; i++) {
            f[i] = block.get(U64, 112 + 8L * i);
        }
        Layout layout = new Layout(f[0], f[1], f[2], f[3], f[4], f[3] + f[4], f[0] - 1);
        String problem = layout.problem();
        if (problem != null) {
            throw corrupt(where, "bad geometry: " + problem);
        }
        String label;
        try {
            byte[] raw = block.asSlice(40, LABEL_BYTES).toArray(ValueLayout.JAVA_BYTE);
            int len = 0;
            while (len < raw.length && raw[len] != 0) {
                len++;
            }
            label = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(raw, 0, len)).toString();
        } catch (CharacterCodingException e) {
            throw corrupt(where, "label is not UTF-8");
        }
        return new Superblock(version, incompat, block.get(U32, 16), block.get(U32, 20),
                new UUID(block.get(U64, 24), block.get(U64, 32)), label, block.get(U32, 108), layout,
                f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15]);
    }

    private static ErrnoException corrupt(long where, String what) {
        return new ErrnoException(Errno.EUCLEAN, "superblock", "block " + where + ": " + what);
    }
}
