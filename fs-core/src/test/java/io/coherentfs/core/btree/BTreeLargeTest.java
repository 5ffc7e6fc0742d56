package io.coherentfs.core.btree;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * 100,000 entries in an extent-map-shaped tree (8-byte key, 16-byte value, full 4 KiB nodes) on a
 * real image: every lookup reads exactly one node per level, a scan returns everything in order,
 * and deleting everything collapses the tree back to one empty root leaf with every other block
 * returned to the store.
 */
class BTreeLargeTest {
    private static final int N = 100_000;
    private static final BTreeSpec SPEC = BTreeSpec.of(8, 16);

    private static byte[] key(long k) {
        // Spread keys out so they are not dense: logical block numbers of extents.
        return ByteBuffer.allocate(8).putLong(k * 7919 + 3).array();
    }

    private static byte[] value(long k) {
        return ByteBuffer.allocate(16).putLong(k * 31 + 1_000_000).putInt((int) (k % 4096) + 1).putInt((int) k)
                .array();
    }

    @Test
    void hundredThousandEntries() throws Exception {
        try (ImageStore image = ImageStore.create("large", 8_192, 2_048)) {
            long[] rootSlot = new long[1];
            BTree tree = BTree.create(image.store, SPEC, 7, -1, r -> rootSlot[0] = r);
            rootSlot[0] = tree.root();

            List<Long> order = new ArrayList<>(N);
            for (long i = 0; i < N; i++) {
                order.add(i);
            }
            BTreeModelTest.shuffle(order, new SplittableRandom(2024));
            for (long k : order) {
                assertThat(tree.insert(key(k), value(k))).isFalse();
            }
            assertThat(tree.validate()).isEmpty();
            assertThat(tree.count()).isEqualTo(N);
            int height = tree.height();
            assertThat(height).as("height of %d entries with %d per leaf", N, SPEC.leafCapacity()).isBetween(3, 4);

            // Reopen from disk: everything must come back from the image.
            image.store.setAnchor(0, tree.root());
            image.reopen();
            tree = BTree.open(image.store, SPEC, 7, image.store.anchor(0), r -> rootSlot[0] = r);

            for (long k = 0; k < N; k++) {
                long before = image.store.stats().reads();
                byte[] v = tree.get(key(k));
                long nodeReads = image.store.stats().reads() - before;
                assertThat(v).isEqualTo(value(k));
                assertThat(nodeReads).as("node reads for one lookup").isLessThanOrEqualTo(height);
            }
            long before = image.store.stats().reads();
            assertThat(tree.get(key(N + 5))).isNull();
            assertThat(image.store.stats().reads() - before).isLessThanOrEqualTo(height);

            BTreeCursor c = tree.scan(null);
            for (long k = 0; k < N; k++) {
                assertThat(c.next()).isTrue();
                assertThat(c.key()).isEqualTo(key(k));
                assertThat(c.value()).isEqualTo(value(k));
            }
            assertThat(c.next()).isFalse();

            // The extent containing a logical block between two keys is the floor entry.
            BTree.Entry containing = tree.floor(ByteBuffer.allocate(8).putLong(500L * 7919 + 3 + 100).array());
            assertThat(containing.key()).isEqualTo(key(500));

            BTreeModelTest.shuffle(order, new SplittableRandom(7));
            int deleted = 0;
            for (long k : order) {
                assertThat(tree.delete(key(k))).isTrue();
                if (++deleted % 25_000 == 0) {
                    assertThat(tree.validate()).isEmpty();
                    assertThat(tree.count()).isEqualTo(N - deleted);
                }
            }
            assertThat(tree.validate()).isEmpty();
            assertThat(tree.height()).isEqualTo(1);
            assertThat(tree.count()).isZero();
            assertThat(tree.first()).isNull();
            assertThat(rootSlot[0]).isEqualTo(tree.root());
            assertThat(image.store.usedBlocks()).as("only the empty root leaf stays allocated").isEqualTo(1);
            assertThat(image.store.pinnedBlocks()).isZero();

            image.store.setAnchor(0, tree.root());
            image.reopen();
            tree = BTree.open(image.store, SPEC, 7, image.store.anchor(0), null);
            assertThat(tree.count()).isZero();
            assertThat(tree.validate()).isEmpty();
        }
    }
}
