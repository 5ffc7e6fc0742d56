package io.coherentfs.core.btree;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Worked examples of the API, including the extent-map use that motivated floor lookups. */
class BTreeTest {
    private ImageStore image;

    @BeforeEach
    void setUp() throws IOException {
        image = ImageStore.create("api", 1_024, 256);
    }

    @AfterEach
    void tearDown() throws IOException {
        image.close();
    }

    private static byte[] u64(long v) {
        return ByteBuffer.allocate(8).putLong(v).array();
    }

    /** Extent-map value: physical block, length, flags. */
    private static byte[] extent(long physical, int length, int flags) {
        return ByteBuffer.allocate(16).putLong(physical).putInt(length).putInt(flags).array();
    }

    @Test
    void anEmptyTreeAnswersNothing() throws IOException {
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 16), 1, -1, null);
        assertThat(tree.get(u64(5))).isNull();
        assertThat(tree.floor(u64(5))).isNull();
        assertThat(tree.ceiling(u64(5))).isNull();
        assertThat(tree.first()).isNull();
        assertThat(tree.last()).isNull();
        assertThat(tree.scan(null).next()).isFalse();
        assertThat(tree.scanDescending(u64(9)).next()).isFalse();
        assertThat(tree.delete(u64(5))).isFalse();
        assertThat(tree.height()).isEqualTo(1);
        assertThat(tree.count()).isZero();
        assertThat(tree.validate()).isEmpty();
    }

    @Test
    void insertReportsReplacementAndDeleteReportsPresence() throws IOException {
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 16), 1, -1, null);
        assertThat(tree.insert(u64(1), extent(100, 8, 0))).isFalse();
        assertThat(tree.insert(u64(1), extent(200, 8, 1))).isTrue();
        assertThat(tree.get(u64(1))).isEqualTo(extent(200, 8, 1));
        assertThat(tree.delete(u64(1))).isTrue();
        assertThat(tree.delete(u64(1))).isFalse();
        assertThatThrownBy(() -> tree.insert(new byte[7], extent(0, 0, 0)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("key must be 8 bytes");
        assertThatThrownBy(() -> tree.insert(u64(1), new byte[15]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("value must be 16 bytes");
    }

    @Test
    void floorFindsTheExtentContainingALogicalBlock() throws IOException {
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 16).withMaxEntries(4, 4), 1, -1, null);
        // Extents of 10 blocks at logical 0, 20, 40, ... (holes in between).
        for (long l = 0; l < 2_000; l += 20) {
            tree.insert(u64(l), extent(10_000 + l, 10, 0));
        }
        assertThat(tree.height()).isGreaterThan(2);
        for (long l = 0; l < 2_010; l++) {
            BTree.Entry e = tree.floor(u64(l));
            long start = ByteBuffer.wrap(e.key()).getLong();
            assertThat(start).isEqualTo(Math.min(l - l % 20, 1_980));
            boolean inside = l - start < ByteBuffer.wrap(e.value()).getInt(8);
            assertThat(inside).as("block %d mapped", l).isEqualTo(l % 20 < 10 && l < 1_990);
        }
        assertThat(ByteBuffer.wrap(tree.ceiling(u64(21)).key()).getLong()).isEqualTo(40);
        assertThat(tree.ceiling(u64(1_981))).isNull();
    }

    @Test
    void scansRunBothWaysFromAnyKey() throws IOException {
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 0).withMaxEntries(3, 4), 1, -1, null);
        for (long k = 10; k <= 500; k += 10) {
            tree.insert(u64(k), new byte[0]);
        }
        assertThat(keys(tree.scan(u64(455)), 3)).containsExactly(460L, 470L, 480L);
        assertThat(keys(tree.scan(u64(460)), 2)).containsExactly(460L, 470L);
        assertThat(keys(tree.scanDescending(u64(455)), 3)).containsExactly(450L, 440L, 430L);
        assertThat(keys(tree.scanDescending(u64(30)), 9)).containsExactly(30L, 20L, 10L);
        assertThat(keys(tree.scanDescending(null), 1)).containsExactly(500L);
        assertThat(keys(tree.scan(u64(501)), 1)).isEmpty();
    }

    private static List<Long> keys(BTreeCursor c, int max) throws IOException {
        List<Long> out = new ArrayList<>();
        while (out.size() < max && c.next()) {
            out.add(ByteBuffer.wrap(c.key()).getLong());
        }
        return out;
    }

    @Test
    void theCallerIsToldWhenTheRootMovesAndDestroyFreesEverything() throws IOException {
        List<Long> roots = new ArrayList<>();
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 8).withMaxEntries(4, 4), 1, -1, roots::add);
        long first = tree.root();
        for (long k = 0; k < 5; k++) {
            tree.insert(u64(k), u64(k));
        }
        assertThat(roots).hasSize(1).doesNotContain(first);
        assertThat(tree.height()).isEqualTo(2);
        for (long k = 0; k < 5; k++) {
            tree.delete(u64(k));
        }
        assertThat(roots).hasSize(2);
        assertThat(tree.root()).isEqualTo(roots.getLast());
        assertThat(tree.height()).isEqualTo(1);

        for (long k = 0; k < 300; k++) {
            tree.insert(u64(k), u64(k));
        }
        assertThat(image.store.usedBlocks()).isGreaterThan(50);
        tree.destroy();
        assertThat(roots.getLast()).isEqualTo(BTree.NO_ROOT);
        assertThat(image.store.usedBlocks()).isZero();
        assertThatThrownBy(() -> tree.get(u64(1))).isInstanceOf(IllegalStateException.class);
    }

    /**
     * Readers may share a tree (under the caller's shared lock) when the store is thread-safe: four
     * threads look up, floor and scan at once while a 16-block cache evicts under them.
     */
    @Test
    void concurrentReadersSeeTheSameTree() throws Exception {
        image.store.close();
        image.store = DeviceNodeStore.open(image.device, ImageStore.FIRST_BLOCK, 16);
        BTree tree = BTree.create(image.store, BTreeSpec.of(8, 8).withMaxEntries(8, 8), 1, -1, null);
        for (long k = 0; k < 3_000; k += 3) {
            tree.insert(u64(k), u64(k * 2));
        }
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(4)) {
            List<java.util.concurrent.Future<Long>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                long seed = t;
                results.add(pool.submit(() -> {
                    java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
                    long checked = 0;
                    for (int i = 0; i < 300; i++) {
                        long k = r.nextLong(3_000);
                        assertThat(tree.get(u64(k))).isEqualTo(k % 3 == 0 ? u64(k * 2) : null);
                        assertThat(tree.floor(u64(k)).key()).isEqualTo(u64(k - k % 3));
                        long ceiling = (k + 2) / 3 * 3;
                        List<Long> scanned = keys(tree.scan(u64(k)), 20);
                        if (ceiling < 3_000) {
                            assertThat(scanned.getFirst()).isEqualTo(ceiling);
                            assertThat(scanned).isSorted().doesNotHaveDuplicates();
                        } else {
                            assertThat(scanned).isEmpty();
                        }
                        checked++;
                    }
                    return checked;
                }));
            }
            for (var f : results) {
                assertThat(f.get()).isEqualTo(300);
            }
        }
        assertThat(image.store.pinnedBlocks()).isZero();
        assertThat(image.store.stats().deviceReads()).as("the small cache really evicted").isGreaterThan(100);
    }

    @Test
    void theValidatorReportsBrokenInvariants() throws IOException {
        BTreeSpec spec = BTreeSpec.of(8, 8).withMaxEntries(4, 4);
        BTree tree = BTree.create(image.store, spec, 1, -1, null);
        for (long k = 0; k < 40; k++) {
            tree.insert(u64(k), u64(k));
        }
        assertThat(tree.validate()).isEmpty();
        // Swap two keys inside a leaf by hand, keeping the checksum valid: only the validator sees it.
        long leaf = firstLeaf(tree);
        java.lang.foreign.MemorySegment seg = image.store.modify(leaf);
        long e0 = NodeCodec.HEADER_SIZE;
        long e1 = NodeCodec.HEADER_SIZE + 16;
        byte[] k0 = seg.asSlice(e0, 8).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        java.lang.foreign.MemorySegment.copy(seg, e1, seg, e0, 8);
        java.lang.foreign.MemorySegment.copy(java.lang.foreign.MemorySegment.ofArray(k0), 0, seg, e1, 8);
        NodeCodec.seal(seg, spec);
        image.store.release(leaf);
        assertThat(tree.validate()).anySatisfy(p -> assertThat(p).contains("block " + leaf).contains("out of order"));

        // A tree opened with smaller fan-out caps than it was built with: nodes exceed capacity.
        BTree narrow = BTree.open(image.store, BTreeSpec.of(8, 8).withMaxEntries(2, 4), 1, tree.root(), null);
        assertThat(narrow.validate()).anySatisfy(p -> assertThat(p).contains("more than the capacity 2"));
    }

    private long firstLeaf(BTree tree) throws IOException {
        long block = tree.root();
        while (true) {
            java.lang.foreign.MemorySegment seg = image.store.read(block);
            int level = NodeCodec.level(seg);
            long child = seg.get(NodeCodec.U64, NodeCodec.HEADER_SIZE + 8);
            image.store.release(block);
            if (level == 0) {
                return block;
            }
            block = child;
        }
    }
}
