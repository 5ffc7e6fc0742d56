package io.coherentfs.core.btree;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.fault.FaultyDevice;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Damage on disk is found, named by block number, and never turned into data: flipped bytes,
 * blocks copied to the wrong place, a node of another tree, and media errors.
 */
class BTreeCorruptionTest {
    private static final BTreeSpec SPEC = BTreeSpec.of(8, 16).withMaxEntries(16, 8);
    private static final long TREE_ID = 11;
    private static final int N = 2_000;

    private ImageStore image;
    private BTree tree;
    private long root;

    private static byte[] key(long k) {
        return ByteBuffer.allocate(8).putLong(k).array();
    }

    private static byte[] value(long k) {
        return ByteBuffer.allocate(16).putLong(k).putLong(~k).array();
    }

    @BeforeEach
    void build() throws IOException {
        image = ImageStore.create("corrupt", 4_096, 256);
        tree = BTree.create(image.store, SPEC, TREE_ID, -1, r -> image.store.setAnchor(0, r));
        image.store.setAnchor(0, tree.root());
        for (long k = 0; k < N; k++) {
            tree.insert(key(k), value(k));
        }
        assertThat(tree.height()).isGreaterThanOrEqualTo(3);
        assertThat(tree.validate()).isEmpty();
        root = tree.root();
        image.closeDevice();
    }

    @AfterEach
    void cleanUp() throws IOException {
        image.close();
    }

    private BTree reopen() throws IOException {
        image.openDevice();
        return BTree.open(image.store, SPEC, TREE_ID, root, r -> image.store.setAnchor(0, r));
    }

    /** The on-disk bytes of {@code block}, read with ordinary (buffered) IO while the device is closed. */
    private ByteBuffer readRaw(long block) throws IOException {
        try (FileChannel ch = FileChannel.open(image.image, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(NodeCodec.BLOCK_SIZE);
            ch.read(b, block * NodeCodec.BLOCK_SIZE);
            return b.flip();
        }
    }

    private void writeRaw(long block, ByteBuffer content) throws IOException {
        try (FileChannel ch = FileChannel.open(image.image, StandardOpenOption.WRITE)) {
            ch.write(content, block * NodeCodec.BLOCK_SIZE);
            ch.force(true);
        }
    }

    private void flipByte(long block, int offset) throws IOException {
        ByteBuffer b = readRaw(block);
        b.put(offset, (byte) (b.get(offset) ^ 0x40));
        writeRaw(block, b);
    }

    /** The leaf that holds key {@code k}, found by walking the image by hand (layout of NodeCodec). */
    private long leafOf(long k) throws IOException {
        long block = root;
        while (true) {
            ByteBuffer b = readRaw(block);
            int level = b.get(NodeCodec.OFF_LEVEL) & 0xff;
            if (level == 0) {
                return block;
            }
            int count = Short.toUnsignedInt(b.order(ByteOrder.LITTLE_ENDIAN).getShort(NodeCodec.OFF_COUNT));
            int entrySize = 8 + 8;
            int child = 0;
            for (int i = 1; i < count; i++) {
                if (b.order(ByteOrder.BIG_ENDIAN).getLong(NodeCodec.HEADER_SIZE + i * entrySize) <= k) {
                    child = i;
                }
            }
            block = b.order(ByteOrder.LITTLE_ENDIAN).getLong(NodeCodec.HEADER_SIZE + child * entrySize + 8);
        }
    }

    @Test
    void aFlippedByteInALeafIsAChecksumErrorNamingTheBlock() throws IOException {
        long leaf = leafOf(1234);
        assertThat(leaf).isNotEqualTo(root);
        flipByte(leaf, 1000);

        tree = reopen();
        assertThatThrownBy(() -> tree.get(key(1234)))
                .isInstanceOf(CorruptNodeException.class)
                .hasMessageStartingWith("metadata block " + leaf + ": checksum mismatch")
                .satisfies(e -> {
                    CorruptNodeException c = (CorruptNodeException) e;
                    assertThat(c.block()).isEqualTo(leaf);
                    assertThat(c.errno()).isEqualTo(Errno.EUCLEAN.code());
                });
        // Every path through the damaged leaf refuses; other leaves still answer.
        assertThatThrownBy(() -> tree.floor(key(1234))).isInstanceOf(CorruptNodeException.class);
        assertThatThrownBy(() -> tree.insert(key(1234), value(0))).isInstanceOf(CorruptNodeException.class);
        assertThatThrownBy(() -> {
            BTreeCursor c = tree.scan(null);
            while (c.next()) {
                assertThat(c.value()).isEqualTo(value(ByteBuffer.wrap(c.key()).getLong()));
            }
        }).isInstanceOf(CorruptNodeException.class);
        assertThat(image.store.pinnedBlocks()).isZero();
        assertThat(tree.get(key(0))).isEqualTo(value(0));
        assertThat(tree.get(key(N - 1))).isEqualTo(value(N - 1));

        List<String> problems = tree.validate();
        assertThat(problems).hasSize(1);
        assertThat(problems.getFirst()).startsWith("metadata block " + leaf + ": checksum mismatch");
    }

    @Test
    void aFlippedByteInTheRootFailsOpen() throws IOException {
        flipByte(root, NodeCodec.HEADER_SIZE + 3);
        image.openDevice();
        assertThatThrownBy(() -> BTree.open(image.store, SPEC, TREE_ID, root, null))
                .isInstanceOf(CorruptNodeException.class)
                .hasMessageStartingWith("metadata block " + root + ": checksum mismatch");
    }

    @Test
    void aBlockWrittenToTheWrongPlaceIsRefused() throws IOException {
        long leafA = leafOf(10);
        long leafB = leafOf(1900);
        writeRaw(leafB, readRaw(leafA));

        tree = reopen();
        assertThatThrownBy(() -> tree.get(key(1900)))
                .isInstanceOf(CorruptNodeException.class)
                .hasMessageStartingWith("metadata block " + leafB + ": header names block " + leafA);
        assertThat(tree.validate()).singleElement().asString().startsWith("metadata block " + leafB);
    }

    @Test
    void aNodeOfAnotherTreeOrShapeIsRefused() throws IOException {
        image.openDevice();
        assertThatThrownBy(() -> BTree.open(image.store, SPEC, TREE_ID + 1, root, null))
                .isInstanceOf(CorruptNodeException.class)
                .hasMessageContaining("belongs to tree " + TREE_ID + ", expected tree " + (TREE_ID + 1));
        assertThatThrownBy(() -> BTree.open(image.store, BTreeSpec.of(8, 12), TREE_ID, root, null))
                .isInstanceOf(CorruptNodeException.class)
                .hasMessageContaining("key/value size 8/16, expected 8/12");
    }

    @Test
    void aMediaErrorIsAnErrorNotData() throws IOException {
        long leaf = leafOf(777);
        try (FaultyDevice faulty = new FaultyDevice(DirectDevice.open(image.image))) {
            DeviceNodeStore store = DeviceNodeStore.open(faulty, ImageStore.FIRST_BLOCK, 64);
            BTree t = BTree.open(store, SPEC, TREE_ID, root, null);
            faulty.failRange(leaf * NodeCodec.BLOCK_SIZE, NodeCodec.BLOCK_SIZE);
            assertThatThrownBy(() -> t.get(key(777))).isInstanceOf(ErrnoException.MediaErrorException.class);
            assertThat(store.pinnedBlocks()).isZero();
            faulty.clearFaults();
            assertThat(t.get(key(777))).isEqualTo(value(777));
            store.close();
        }
    }
}
