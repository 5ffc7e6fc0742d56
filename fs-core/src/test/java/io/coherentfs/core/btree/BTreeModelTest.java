package io.coherentfs.core.btree;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.Tuple;

/**
 * Random programs of inserts, deletes, lookups, floor/ceiling, scans both ways, bulk loads, range
 * deletes and close-and-reopen-from-disk, run against a {@link BTree} on a real O_DIRECT image and
 * against a {@link TreeMap} of unsigned byte strings; the tree must answer exactly like the map,
 * pass {@link BTree#validate} after every change and leave no block pinned.
 */
class BTreeModelTest {

    /** Key and value sizes and fan-out under test, and how many distinct keys programs draw from. */
    record Shape(String name, BTreeSpec spec, int keySpace) {
        @Override
        public String toString() {
            return name + " (key " + spec.keySize() + ", value " + spec.valueSize() + ", leaf "
                    + spec.leafCapacity() + ", internal " + spec.internalCapacity() + ")";
        }
    }

    sealed interface Action permits Put, Remove, Get, Floor, Ceiling, Scan, BulkPut, RemoveRange,
            ScanWhileDeleting, Reopen {
    }

    record Put(int key, long seed) implements Action {
    }

    record Remove(int key) implements Action {
    }

    record Get(int key) implements Action {
    }

    record Floor(int key) implements Action {
    }

    record Ceiling(int key) implements Action {
    }

    record Scan(int from, int limit, boolean descending) implements Action {
    }

    record BulkPut(long seed, int n) implements Action {
    }

    record RemoveRange(int from, int length) implements Action {
    }

    record ScanWhileDeleting(int from, long seed) implements Action {
    }

    record Reopen() implements Action {
    }

    @Provide
    Arbitrary<Shape> shapes() {
        return Arbitraries.of(
                new Shape("full 4 KiB nodes", BTreeSpec.of(8, 16), 20_000),
                new Shape("tiny fan-out", BTreeSpec.of(8, 8).withMaxEntries(4, 4), 2_000),
                new Shape("odd fan-out, 3-byte set", BTreeSpec.of(3, 0).withMaxEntries(3, 5), 2_000),
                new Shape("large values", BTreeSpec.of(16, 1000), 2_000),
                new Shape("huge keys and values", BTreeSpec.of(1000, 1000), 1_000),
                new Shape("extent map", BTreeSpec.of(8, 16).withMaxEntries(12, 6), 5_000));
    }

    @Provide
    Arbitrary<List<Action>> programs() {
        Arbitrary<Integer> key = Arbitraries.integers().between(0, 1 << 20);
        Arbitrary<Action> put = Combinators.combine(key, Arbitraries.longs()).as(Put::new);
        Arbitrary<Action> remove = key.map(Remove::new);
        Arbitrary<Action> get = key.map(Get::new);
        Arbitrary<Action> floor = key.map(Floor::new);
        Arbitrary<Action> ceiling = key.map(Ceiling::new);
        Arbitrary<Action> scan = Combinators.combine(key, Arbitraries.integers().between(0, 400),
                Arbitraries.of(true, false)).as(Scan::new);
        Arbitrary<Action> bulk = Combinators.combine(Arbitraries.longs(), Arbitraries.integers().between(1, 700))
                .as(BulkPut::new);
        Arbitrary<Action> removeRange = Combinators.combine(key, Arbitraries.integers().between(1, 1500))
                .as(RemoveRange::new);
        Arbitrary<Action> scanDeleting = Combinators.combine(key, Arbitraries.longs()).as(ScanWhileDeleting::new);
        Arbitrary<Action> reopen = Arbitraries.just(new Reopen());
        return Arbitraries.frequencyOf(
                        Tuple.of(8, put), Tuple.of(5, remove), Tuple.of(4, get), Tuple.of(3, floor),
                        Tuple.of(2, ceiling), Tuple.of(2, scan), Tuple.of(5, bulk), Tuple.of(3, removeRange),
                        Tuple.of(1, scanDeleting), Tuple.of(2, reopen))
                .list().ofMinSize(8).ofMaxSize(50);
    }

    /**
     * Blocks the store caches: mostly enough for the whole tree, sometimes so few that nodes are
     * written back and read again from the image all the time (slow when the disk is busy).
     */
    @Provide
    Arbitrary<Integer> cacheSizes() {
        return Arbitraries.frequency(Tuple.of(1, 16), Tuple.of(4, 4096));
    }

    @Property(tries = 80, shrinking = ShrinkingMode.BOUNDED)
    void behavesLikeASortedMap(@ForAll("shapes") Shape shape, @ForAll("programs") List<Action> program,
            @ForAll("cacheSizes") int cacheBlocks) throws IOException {
        try (ImageStore image = ImageStore.create("model", 16_384, cacheBlocks)) {
            Harness h = new Harness(shape, image);
            for (Action action : program) {
                h.apply(action);
            }
            h.reopen();
            h.checkEverything();
        }
    }

    @Property(tries = 12, shrinking = ShrinkingMode.BOUNDED)
    void deletingEverythingCollapsesToAnEmptyRootLeaf(@ForAll("shapes") Shape shape,
            @ForAll long seed) throws IOException {
        try (ImageStore image = ImageStore.create("collapse", 16_384, 4096)) {
            Harness h = new Harness(shape, image);
            h.apply(new BulkPut(seed, 1500));
            h.reopen();
            List<byte[]> keys = new ArrayList<>(h.model.keySet());
            shuffle(keys, new SplittableRandom(seed));
            for (int i = 0; i < keys.size(); i++) {
                assertThat(h.tree.delete(keys.get(i))).isTrue();
                h.model.remove(keys.get(i));
                if (i % 97 == 0) {
                    h.checkStructure();
                }
                if (i % 500 == 499) {
                    h.reopen();
                }
            }
            h.checkEverything();
            assertThat(h.tree.height()).isEqualTo(1);
            assertThat(h.tree.count()).isZero();
            assertThat(h.image.store.usedBlocks()).as("blocks still allocated").isEqualTo(1);
        }
    }

    /** Runs actions on the tree and the model side by side. */
    static final class Harness {
        static final long TREE_ID = 42;
        final Shape shape;
        final ImageStore image;
        final NavigableMap<byte[], byte[]> model = new TreeMap<>(Arrays::compareUnsigned);
        BTree tree;

        Harness(Shape shape, ImageStore image) throws IOException {
            this.shape = shape;
            this.image = image;
            tree = BTree.create(image.store, shape.spec(), TREE_ID, -1, this::rootChanged);
            image.store.setAnchor(0, tree.root());
        }

        private void rootChanged(long root) {
            image.store.setAnchor(0, root);
        }

        byte[] key(int k) {
            int n = shape.spec().keySize();
            int bounded = Math.floorMod(k, shape.keySpace());
            byte[] key = new byte[n];
            for (int i = 0; i < Math.min(4, n); i++) {
                key[n - 1 - i] = (byte) (bounded >>> (8 * i));
            }
            return key;
        }

        byte[] value(int k, long seed) {
            byte[] v = new byte[shape.spec().valueSize()];
            new SplittableRandom(seed * 31 + k).nextBytes(v);
            return v;
        }

        void apply(Action action) throws IOException {
            switch (action) {
                case Put(int k, long seed) -> {
                    byte[] key = key(k);
                    byte[] value = value(k, seed);
                    boolean replaced = model.put(key, value) != null;
                    assertThat(tree.insert(key, value)).as("insert replaced").isEqualTo(replaced);
                    checkStructure();
                }
                case Remove(int k) -> {
                    byte[] key = key(k);
                    boolean present = model.remove(key) != null;
                    assertThat(tree.delete(key)).as("delete found the key").isEqualTo(present);
                    checkStructure();
                }
                case Get(int k) -> assertThat(tree.get(key(k))).isEqualTo(model.get(key(k)));
                case Floor(int k) -> assertSameEntry(tree.floor(key(k)), model.floorEntry(key(k)));
                case Ceiling(int k) -> assertSameEntry(tree.ceiling(key(k)), model.ceilingEntry(key(k)));
                case Scan(int from, int limit, boolean descending) -> {
                    byte[] f = key(from);
                    BTreeCursor c = descending ? tree.scanDescending(f) : tree.scan(f);
                    NavigableMap<byte[], byte[]> expected = descending
                            ? model.headMap(f, true).descendingMap() : model.tailMap(f, true);
                    assertCursorMatches(c, expected, limit);
                }
                case BulkPut(long seed, int n) -> {
                    SplittableRandom r = new SplittableRandom(seed);
                    for (int i = 0; i < n; i++) {
                        int k = r.nextInt(shape.keySpace());
                        byte[] key = key(k);
                        byte[] value = value(k, seed + i);
                        boolean replaced = model.put(key, value) != null;
                        assertThat(tree.insert(key, value)).isEqualTo(replaced);
                    }
                    checkStructure();
                }
                case RemoveRange(int from, int length) -> {
                    int start = Math.floorMod(from, shape.keySpace());
                    for (int k = start; k < Math.min(shape.keySpace(), start + length); k++) {
                        byte[] key = key(k);
                        boolean present = model.remove(key) != null;
                        assertThat(tree.delete(key)).isEqualTo(present);
                    }
                    checkStructure();
                }
                case ScanWhileDeleting(int from, long seed) -> scanWhileDeleting(key(from), new SplittableRandom(seed));
                case Reopen() -> {
                    reopen();
                    checkEverything();
                }
            }
        }

        /**
         * A cursor walks while the tree changes under it: keys come strictly in order, only keys
         * that were present, and every key present for the whole walk.
         */
        private void scanWhileDeleting(byte[] from, SplittableRandom r) throws IOException {
            Set<String> before = new HashSet<>();
            for (byte[] k : model.tailMap(from, true).keySet()) {
                before.add(Arrays.toString(k));
            }
            Set<String> deleted = new HashSet<>();
            Set<String> seen = new HashSet<>();
            BTreeCursor c = tree.scan(from);
            byte[] previous = null;
            while (c.next()) {
                byte[] k = c.key();
                if (previous != null) {
                    assertThat(Arrays.compareUnsigned(previous, k)).as("cursor order").isNegative();
                }
                previous = k;
                assertThat(before).contains(Arrays.toString(k));
                seen.add(Arrays.toString(k));
                if (r.nextInt(3) == 0) {
                    byte[] victim = r.nextBoolean() ? k : model.higherKey(k);
                    if (victim != null) {
                        // The current key may already be gone: it was the previous step's "next key".
                        boolean present = model.remove(victim) != null;
                        assertThat(tree.delete(victim)).isEqualTo(present);
                        deleted.add(Arrays.toString(victim));
                    }
                }
            }
            Set<String> mustSee = new HashSet<>(before);
            mustSee.removeAll(deleted);
            assertThat(seen).containsAll(mustSee);
            checkStructure();
        }

        void reopen() throws IOException {
            image.store.setAnchor(0, tree.root());
            image.reopen();
            tree = BTree.open(image.store, shape.spec(), TREE_ID, image.store.anchor(0), this::rootChanged);
        }

        void checkStructure() throws IOException {
            assertThat(tree.validate()).as("invariants of " + shape).isEmpty();
            assertThat(image.store.pinnedBlocks()).as("blocks left pinned").isZero();
        }

        void checkEverything() throws IOException {
            checkStructure();
            assertThat(tree.count()).isEqualTo(model.size());
            assertCursorMatches(tree.scan(null), model, Integer.MAX_VALUE);
            assertCursorMatches(tree.scanDescending(null), model.descendingMap(), Integer.MAX_VALUE);
            assertSameEntry(tree.first(), model.firstEntry());
            assertSameEntry(tree.last(), model.lastEntry());
            Set<Long> blocks = new HashSet<>();
            tree.validate(blocks::add);
            assertThat((long) blocks.size()).as("nodes vs blocks the store has handed out")
                    .isEqualTo(image.store.usedBlocks());
        }

        private static void assertCursorMatches(BTreeCursor c, Map<byte[], byte[]> expected, int limit)
                throws IOException {
            int n = 0;
            for (Map.Entry<byte[], byte[]> e : expected.entrySet()) {
                if (n++ == limit) {
                    return;
                }
                assertThat(c.next()).as("cursor ended early at entry " + (n - 1)).isTrue();
                assertThat(c.key()).isEqualTo(e.getKey());
                assertThat(c.value()).isEqualTo(e.getValue());
            }
            if (n < limit) {
                assertThat(c.next()).as("cursor has more entries than the model").isFalse();
            }
        }

        private static void assertSameEntry(BTree.Entry actual, Map.Entry<byte[], byte[]> expected) {
            if (expected == null) {
                assertThat(actual).isNull();
            } else {
                assertThat(actual).isNotNull();
                assertThat(actual.key()).isEqualTo(expected.getKey());
                assertThat(actual.value()).isEqualTo(expected.getValue());
            }
        }
    }

    static <T> void shuffle(List<T> list, SplittableRandom r) {
        for (int i = list.size() - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            T t = list.get(i);
            list.set(i, list.get(j));
            list.set(j, t);
        }
    }
}
