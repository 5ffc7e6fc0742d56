package io.coherentfs.core.btree;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The test and tool store: allocator, persistence, ENOSPC, and enforcement of the pin protocol. */
class DeviceNodeStoreTest {

    private static byte[] key(long k) {
        return ByteBuffer.allocate(8).putLong(k).array();
    }

    @Test
    void allocatorStateAndAnchorsSurviveReopen() throws IOException {
        try (ImageStore image = ImageStore.create("alloc", 256, 32)) {
            DeviceNodeStore s = image.store;
            long a = s.allocate(-1);
            long b = s.allocate(a);
            long c = s.allocate(b);
            assertThat(new long[] {a, b, c}).containsExactly(2, 3, 4);
            for (long block : new long[] {a, b, c}) {
                sealedNode(s, block);
            }
            s.free(b);
            s.free(a);
            s.setAnchor(3, 0xfeedL);
            assertThat(s.usedBlocks()).isEqualTo(1);

            image.reopen();
            s = image.store;
            assertThat(s.anchor(3)).isEqualTo(0xfeedL);
            assertThat(s.usedBlocks()).isEqualTo(1);
            assertThat(s.allocate(-1)).as("last freed first").isEqualTo(a);
            assertThat(s.allocate(-1)).isEqualTo(b);
            assertThat(s.allocate(-1)).as("then fresh blocks").isEqualTo(5);
        }
    }

    /** Makes {@code block} a sealed empty node, as the tree would. */
    private static void sealedNode(DeviceNodeStore s, long block) throws IOException {
        MemorySegment seg = s.modify(block);
        NodeCodec.format(seg, block, BTreeSpec.of(8, 8), 1, 0);
        NodeCodec.seal(seg, BTreeSpec.of(8, 8));
        s.release(block);
    }

    @Test
    void theStoreRefusesCallsThatBreakTheProtocol() throws IOException {
        try (ImageStore image = ImageStore.create("protocol", 256, 32)) {
            DeviceNodeStore s = image.store;
            long a = s.allocate(-1);
            sealedNode(s, a);
            s.read(a);
            assertThatThrownBy(() -> s.modify(a)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("pinned");
            assertThatThrownBy(() -> s.free(a)).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(s::flush).isInstanceOf(IllegalStateException.class);
            s.release(a);
            assertThatThrownBy(() -> s.release(a)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("not pinned");
            s.free(a);
            assertThatThrownBy(() -> s.free(a)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("already free");
            assertThatThrownBy(() -> s.modify(a)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("free");
            // A stale pointer to a free block reads the free record, which no tree accepts.
            MemorySegment stale = s.read(a);
            assertThat(NodeCodec.magic(stale)).isEqualTo(DeviceNodeStore.FREE_MAGIC);
            assertThatThrownBy(() -> NodeCodec.check(a, stale, BTreeSpec.of(8, 8), 1, -1))
                    .isInstanceOf(CorruptNodeException.class).hasMessageContaining("not a B+tree node");
            s.release(a);
            assertThatThrownBy(() -> s.read(200)).isInstanceOf(CorruptNodeException.class)
                    .hasMessageContaining("metadata block 200");

            // A block released after modify without a valid checksum is never written.
            long b = s.allocate(-1);
            s.modify(b).fill((byte) 7);
            s.release(b);
            assertThatThrownBy(s::flush).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("block " + b);
        }
    }

    @Test
    void insertThatRunsOutOfSpaceLeavesTheTreeUnchanged() throws IOException {
        BTreeSpec spec = BTreeSpec.of(8, 8).withMaxEntries(4, 4);
        try (ImageStore image = ImageStore.create("enospc", 256, 64)) {
            // A region of only 40 blocks (header included) for the store.
            image.store.close();
            image.store = DeviceNodeStore.format(image.device, ImageStore.FIRST_BLOCK, 40, 64);
            BTree tree = BTree.create(image.store, spec, 5, -1, r -> image.store.setAnchor(0, r));
            image.store.setAnchor(0, tree.root());
            NavigableMap<byte[], byte[]> model = new TreeMap<>(Arrays::compareUnsigned);
            long k = 0;
            ErrnoException failure = null;
            while (failure == null) {
                byte[] v = ByteBuffer.allocate(8).putLong(k * 3).array();
                try {
                    tree.insert(key(k), v);
                    model.put(key(k), v);
                    k++;
                } catch (ErrnoException.NoSpaceException e) {
                    failure = e;
                }
            }
            assertThat(failure.getMessage()).contains("is full");
            assertThat(image.store.pinnedBlocks()).isZero();
            assertThat(tree.validate()).isEmpty();
            assertThat(tree.get(key(k))).isNull();
            assertThat(tree.count()).isEqualTo(model.size());

            // Deletes make room again and the tree goes on.
            for (long d = 0; d < model.size() / 2; d++) {
                assertThat(tree.delete(key(d * 2))).isTrue();
            }
            assertThat(tree.insert(key(k), new byte[8])).isFalse();
            assertThat(tree.validate()).isEmpty();

            image.store.flush();
            long root = tree.root();
            image.reopen();
            BTree again = BTree.open(image.store, spec, 5, root, null);
            assertThat(again.validate()).isEmpty();
            assertThat(again.get(key(k))).isEqualTo(new byte[8]);
            assertThat(again.get(key(1))).isEqualTo(ByteBuffer.allocate(8).putLong(3).array());
        }
    }
}
