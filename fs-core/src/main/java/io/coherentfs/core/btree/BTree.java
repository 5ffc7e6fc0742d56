package io.coherentfs.core.btree;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * The one on-disk B+tree behind every keyed structure of coherentfs (each inode's extent map,
 * directory entries by name hash, free space, the inode table): fixed-size keys and values, one
 * node per 4 KiB block (layout in {@link NodeCodec}), all IO through a {@link NodeStore}.
 *
 * <h2>Invariants (checked by {@link #validate})</h2>
 * <ul>
 *   <li>Keys are unique and strictly increasing within a node and across the tree, compared as
 *       unsigned byte strings; every key of child i of an internal node lies in
 *       {@code [key[i], key[i+1])}, and {@code key[0]} equals the node's own lower bound (the
 *       all-zero key on the leftmost path).</li>
 *   <li>All leaves are at level 0 and every child is exactly one level below its parent, so all
 *       leaves are at the same depth and {@link #height()} is the root's level plus one.</li>
 *   <li>Every node except the root holds at least half its capacity
 *       ({@link BTreeSpec#minLeafEntries()}, {@link BTreeSpec#minInternalEntries()}); an internal
 *       root has at least two children; a root leaf may be empty (the empty tree).</li>
 *   <li>Every node carries its tree id, own block number and a CRC32C; nodes are checked each
 *       time they are loaded, and a bad one raises {@link CorruptNodeException} (EUCLEAN) naming
 *       the block. Nothing from an unchecked node is ever returned.</li>
 * </ul>
 *
 * <h2>Balancing</h2>
 * Insert descends to the leaf and, if it is full, splits it in half and pushes the right half's
 * first key up, splitting parents as they overflow; a full root splits into a new root (the tree
 * grows by one level). All blocks an insert needs are allocated before any node changes, so
 * ENOSPC leaves the tree as it was. Delete removes from the leaf and, when a non-root node falls
 * below half full, evens it out with a sibling that has entries to spare, else merges the two and
 * removes the right one from the parent, recursively; a root left with one child is replaced by
 * that child (the tree shrinks by one level). Separators are lower bounds and are not refreshed
 * on delete.
 *
 * <h2>Root</h2>
 * The root block number belongs to the caller (an inode, the superblock). {@link #root()} returns
 * it, and the {@link RootListener} given at open is told of every change before the mutating
 * method returns, so the caller records it in the same transaction.
 *
 * <h2>Concurrency</h2>
 * A {@code BTree} is not thread-safe by itself and keeps no state between calls except the root.
 * The caller serializes with its own lock (tier 5: for an extent map, the inode's extent-tree
 * lock): {@link #insert}, {@link #delete} and {@link #destroy} need it exclusively; the read
 * methods ({@link #get}, {@link #floor}, {@link #ceiling}, {@link #first}, {@link #last},
 * {@link #count}, {@link #height}, {@link #validate}, cursor steps) may run concurrently with each
 * other under a shared hold, provided the {@link NodeStore} is thread-safe. A cursor holds no pin
 * and no lock between steps: each step re-descends from the root, so the caller may drop the lock
 * between steps and even change the tree (see {@link BTreeCursor}).
 *
 * <p>If a mutating method throws (an IO error, EUCLEAN, or ENOSPC from a delete's store), the
 * tree's blocks are in an undefined state: the caller aborts its transaction and reopens the tree
 * from the last committed root (see {@link NodeStore}). ENOSPC from {@link #insert} is the
 * exception: the tree is then unchanged.
 */
public final class BTree {

    /** Told when the root block changes (a root split or collapse, or {@link #destroy}). */
    @FunctionalInterface
    public interface RootListener {
        /** Called inside the mutating operation, after the new root is complete and released. */
        void rootChanged(long newRoot) throws IOException;
    }

    /** A key and its value, both copies the caller owns; equal when their bytes are. */
    public record Entry(byte[] key, byte[] value) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Entry e && Arrays.equals(key, e.key) && Arrays.equals(value, e.value);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(key) + Arrays.hashCode(value);
        }

        @Override
        public String toString() {
            return "Entry[" + HexFormat.of().formatHex(key) + "=" + HexFormat.of().formatHex(value) + "]";
        }
    }

    /** Root value after {@link #destroy}. */
    public static final long NO_ROOT = -1;

    private static final int MAX_DEPTH = NodeCodec.MAX_LEVEL + 1;
    private static final ValueLayout.OfLong CHILD = NodeCodec.U64;

    private final NodeStore store;
    private final BTreeSpec spec;
    private final long treeId;
    private final RootListener listener;
    private final int keySize;
    private final int valueSize;
    private final byte[] zeroKey;
    private volatile long root;

    private BTree(NodeStore store, BTreeSpec spec, long treeId, long root, RootListener listener) {
        this.store = store;
        this.spec = spec;
        this.treeId = treeId;
        this.root = root;
        this.listener = listener == null ? r -> { } : listener;
        this.keySize = spec.keySize();
        this.valueSize = spec.valueSize();
        this.zeroKey = new byte[keySize];
    }

    /**
     * Creates an empty tree: one empty root leaf, allocated near {@code goal}. The listener is not
     * called for this first root; read it from {@link #root()}.
     */
    public static BTree create(NodeStore store, BTreeSpec spec, long treeId, long goal, RootListener listener)
            throws IOException {
        long block = store.allocate(goal);
        BTree tree = new BTree(store, spec, treeId, block, listener);
        try (Op op = tree.new Op()) {
            op.release(op.fresh(block, 0));
            op.complete();
        }
        return tree;
    }

    /**
     * Opens the tree whose root is {@code root}, checking that block (it must be a sealed node of
     * tree {@code treeId} with {@code spec}'s key and value sizes).
     *
     * @throws CorruptNodeException if the root block is not such a node
     */
    public static BTree open(NodeStore store, BTreeSpec spec, long treeId, long root, RootListener listener)
            throws IOException {
        BTree tree = new BTree(store, spec, treeId, root, listener);
        try (Op op = tree.new Op()) {
            op.release(op.read(root, -1));
            op.complete();
        }
        return tree;
    }

    /** The current root block; the caller persists it. */
    public long root() {
        return root;
    }

    public long treeId() {
        return treeId;
    }

    public BTreeSpec spec() {
        return spec;
    }

    // ---- lookups ------------------------------------------------------------------------------

    /**
     * The value stored under {@code key}, or null. Reads exactly {@link #height()} nodes.
     */
    public byte[] get(byte[] key) throws IOException {
        MemorySegment k = keySegment(key);
        ensureOpen();
        try (Op op = new Op()) {
            long block = root;
            int level = -1;
            while (true) {
                Node n = op.read(block, level);
                if (n.isLeaf()) {
                    int i = n.search(k);
                    byte[] value = i >= 0 ? n.valueCopy(i) : null;
                    op.release(n);
                    op.complete();
                    return value;
                }
                block = n.child(n.childIndex(k));
                level = n.level - 1;
                op.release(n);
            }
        }
    }

    /** The entry with the greatest key {@code <= key}, or null (e.g. the extent containing a block). */
    public Entry floor(byte[] key) throws IOException {
        return firstOf(seek(keySegment(key), true, false, 1));
    }

    /** The entry with the smallest key {@code >= key}, or null. */
    public Entry ceiling(byte[] key) throws IOException {
        return firstOf(seek(keySegment(key), true, true, 1));
    }

    /** The entry with the smallest key, or null when the tree is empty. */
    public Entry first() throws IOException {
        return firstOf(seek(null, true, true, 1));
    }

    /** The entry with the greatest key, or null when the tree is empty. */
    public Entry last() throws IOException {
        return firstOf(seek(null, true, false, 1));
    }

    /** A cursor over the entries with keys {@code >= from} in ascending order; null: from the first. */
    public BTreeCursor scan(byte[] from) {
        return new Cursor(from == null ? null : keySegment(from).toArray(ValueLayout.JAVA_BYTE), true);
    }

    /**
     * A cursor over the entries with keys {@code <= from} in descending order; null: from the last.
     */
    public BTreeCursor scanDescending(byte[] from) {
        return new Cursor(from == null ? null : keySegment(from).toArray(ValueLayout.JAVA_BYTE), false);
    }

    /** Levels from root to leaf (1 for a tree that is a single leaf). Reads the root. */
    public int height() throws IOException {
        ensureOpen();
        try (Op op = new Op()) {
            Node r = op.read(root, -1);
            int h = r.level + 1;
            op.release(r);
            op.complete();
            return h;
        }
    }

    /** The number of entries; reads every node (O(nodes)), meant for tests and tools. */
    public long count() throws IOException {
        ensureOpen();
        long total = 0;
        try (Op op = new Op()) {
            List<long[]> stack = new ArrayList<>();
            stack.add(new long[] {root, -1});
            while (!stack.isEmpty()) {
                long[] top = stack.removeLast();
                Node n = op.read(top[0], (int) top[1]);
                if (n.isLeaf()) {
                    total += n.count();
                } else {
                    for (int i = 0; i < n.count(); i++) {
                        stack.add(new long[] {n.child(i), n.level - 1});
                    }
                }
                op.release(n);
            }
            op.complete();
        }
        return total;
    }

    // ---- insert -------------------------------------------------------------------------------

    /**
     * Inserts {@code key -> value}, replacing the value if the key is present.
     *
     * @return true if a value was replaced, false if the key is new
     */
    public boolean insert(byte[] key, byte[] value) throws IOException {
        MemorySegment k = keySegment(key);
        if (value == null || value.length != valueSize) {
            throw new IllegalArgumentException("value must be " + valueSize + " bytes, got "
                    + (value == null ? "null" : value.length));
        }
        MemorySegment v = MemorySegment.ofArray(value);
        ensureOpen();
        try (Op op = new Op()) {
            Path path = descend(op, k);
            int leafDepth = path.depth;
            long leafBlock = path.blocks[leafDepth];
            int pos = path.index[leafDepth];
            if (pos >= 0 || path.counts[leafDepth] < spec.leafCapacity()) {
                Node leaf = op.write(leafBlock, 0);
                boolean replaced = pos >= 0;
                if (replaced) {
                    leaf.setValue(pos, v);
                } else {
                    leaf.insertEntry(-pos - 1, k, v);
                }
                op.release(leaf);
                op.complete();
                return replaced;
            }

            // The leaf is full: it and every full ancestor split; a full root adds a level.
            int splits = 1;
            int d = leafDepth - 1;
            while (d >= 0 && path.counts[d] >= spec.internalCapacity()) {
                splits++;
                d--;
            }
            boolean growRoot = d < 0;
            long[] fresh = allocateAll(splits + (growRoot ? 1 : 0), leafBlock);
            int nextFresh = 0;

            MemorySegment upKey = k;
            MemorySegment upValue = v;
            int at = -pos - 1;
            for (d = leafDepth; d >= 0; d--) {
                int level = leafDepth - d;
                Node left = op.write(path.blocks[d], level);
                if (left.count() < spec.capacity(level)) {
                    left.insertEntry(at, upKey, upValue);
                    op.release(left);
                    for (int i = nextFresh; i < fresh.length; i++) {
                        store.free(fresh[i]); // not reached while path counts are exact
                    }
                    op.complete();
                    return false;
                }
                Node right = op.fresh(fresh[nextFresh++], level);
                splitInsert(left, right, at, upKey, upValue);
                upKey = MemorySegment.ofArray(right.keyCopy(0));
                upValue = childValue(right.block);
                op.release(left);
                op.release(right);
                if (d > 0) {
                    at = path.index[d - 1] + 1;
                }
            }
            // The old root split: a new root above it holds both halves.
            Node newRoot = op.fresh(fresh[nextFresh++], leafDepth + 1);
            newRoot.insertEntry(0, MemorySegment.ofArray(zeroKey), childValue(root));
            newRoot.insertEntry(1, upKey, upValue);
            op.release(newRoot);
            setRoot(newRoot.block);
            op.complete();
            return false;
        }
    }

    /**
     * Moves the upper half of the full node {@code left} into the empty node {@code right} and
     * inserts the entry at position {@code at} of the combined sequence. Afterwards left holds
     * ceil((cap+1)/2) entries and right the rest, both at least the minimum fill.
     */
    private static void splitInsert(Node left, Node right, int at, MemorySegment key, MemorySegment value) {
        int c = left.count();
        int leftCount = (c + 2) / 2;
        if (at < leftCount) {
            int keep = leftCount - 1;
            Node.move(left, keep, right, 0, c - keep);
            left.setCount(keep);
            right.setCount(c - keep);
            left.insertEntry(at, key, value);
        } else {
            Node.move(left, leftCount, right, 0, c - leftCount);
            left.setCount(leftCount);
            right.setCount(c - leftCount);
            right.insertEntry(at - leftCount, key, value);
        }
    }

    private long[] allocateAll(int n, long goal) throws IOException {
        long[] blocks = new long[n];
        int done = 0;
        try {
            for (; done < n; done++) {
                blocks[done] = store.allocate(done == 0 ? goal : blocks[done - 1]);
            }
            return blocks;
        } catch (IOException | RuntimeException e) {
            for (int i = 0; i < done; i++) {
                try {
                    store.free(blocks[i]);
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    // ---- delete -------------------------------------------------------------------------------

    /**
     * Removes {@code key}.
     *
     * @return true if it was present
     */
    public boolean delete(byte[] key) throws IOException {
        MemorySegment k = keySegment(key);
        ensureOpen();
        try (Op op = new Op()) {
            Path path = descend(op, k);
            int depth = path.depth;
            int pos = path.index[depth];
            if (pos < 0) {
                op.complete();
                return false;
            }
            Node leaf = op.write(path.blocks[depth], 0);
            leaf.removeEntry(pos);
            int count = leaf.count();
            op.release(leaf);

            int level = 0;
            while (depth > 0 && count < spec.minEntries(level)) {
                count = rebalance(op, path.blocks[depth - 1], path.index[depth - 1], level + 1);
                depth--;
                level++;
            }
            if (depth == 0 && level > 0 && count == 1) {
                // The root is an internal node with a single child: that child becomes the root.
                Node oldRoot = op.read(root, level);
                long child = oldRoot.child(0);
                op.release(oldRoot);
                long old = root;
                setRoot(child);
                store.free(old);
            }
            op.complete();
            return true;
        }
    }

    /**
     * Fixes the underfull child {@code childIndex} of {@code parentBlock} (at {@code parentLevel})
     * with a sibling: evens the two out if the sibling has more than the minimum, else merges
     * them into the left one and frees the right one.
     *
     * @return the parent's entry count afterwards
     */
    private int rebalance(Op op, long parentBlock, int childIndex, int parentLevel) throws IOException {
        int level = parentLevel - 1;
        Node parent = op.write(parentBlock, parentLevel);
        int n = parent.count();
        if (n < 2) {
            throw new CorruptNodeException(parentBlock, "internal node with " + n + " children");
        }
        int li = childIndex + 1 < n ? childIndex : childIndex - 1;
        int ri = li + 1;
        Node left = op.write(parent.child(li), level);
        Node right = op.write(parent.child(ri), level);
        int lc = left.count();
        int rc = right.count();
        int sibling = li == childIndex ? rc : lc;
        // In a sound tree lc + rc <= 2 * min - 1 <= capacity whenever the sibling cannot lend.
        if (sibling > spec.minEntries(level) || lc + rc > spec.capacity(level)) {
            int total = lc + rc;
            int newLeft = total / 2;
            if (lc < newLeft) {
                int moved = newLeft - lc;
                Node.move(right, 0, left, lc, moved);
                left.setCount(newLeft);
                right.removeRange(0, moved);
            } else if (lc > newLeft) {
                int moved = lc - newLeft;
                right.openGap(0, moved);
                Node.move(left, newLeft, right, 0, moved);
                left.setCount(newLeft);
            }
            parent.setKey(ri, right.keySegment(0));
            op.release(left);
            op.release(right);
            op.release(parent);
            return n;
        }
        Node.move(right, 0, left, lc, rc);
        left.setCount(lc + rc);
        long freed = right.block;
        parent.removeEntry(ri);
        op.release(left);
        op.release(right);
        op.release(parent);
        store.free(freed);
        return n - 1;
    }

    // ---- whole-tree operations ----------------------------------------------------------------

    /**
     * Frees every node of the tree (e.g. when the inode goes away). Every node is read and checked
     * before the first is freed, so a damaged tree fails with {@link CorruptNodeException} having
     * freed nothing. The tree is unusable afterwards and the listener is told the root is
     * {@link #NO_ROOT}.
     */
    public void destroy() throws IOException {
        ensureOpen();
        try (Op op = new Op()) {
            List<long[]> stack = new ArrayList<>();
            List<Long> preOrder = new ArrayList<>();
            stack.add(new long[] {root, -1});
            while (!stack.isEmpty()) {
                long[] top = stack.removeLast();
                Node n = op.read(top[0], (int) top[1]);
                if (!n.isLeaf()) {
                    for (int i = 0; i < n.count(); i++) {
                        stack.add(new long[] {n.child(i), n.level - 1});
                    }
                }
                op.release(n);
                preOrder.add(top[0]);
            }
            for (int i = preOrder.size() - 1; i >= 0; i--) {
                store.free(preOrder.get(i)); // children before their parents
            }
            setRoot(NO_ROOT);
            op.complete();
        }
    }

    /** {@link #validate(LongConsumer)} without a block visitor. */
    public List<String> validate() throws IOException {
        return validate(b -> { });
    }

    /**
     * Checks every invariant listed in the class comment over the whole tree and returns one line
     * per problem (empty: the tree is sound). Damaged nodes are reported, not thrown, and their
     * subtrees skipped; only a failure of the store itself (e.g. EIO) is thrown.
     *
     * @param blockVisitor told every block the tree references, once each, e.g. for fsck's
     *     allocation cross-check
     */
    public List<String> validate(LongConsumer blockVisitor) throws IOException {
        ensureOpen();
        List<String> problems = new ArrayList<>();
        try (Op op = new Op()) {
            validateNode(op, root, -1, zeroKey, null, true, new HashSet<>(), problems, blockVisitor);
            op.complete();
        }
        return problems;
    }

    private void validateNode(Op op, long block, int expectedLevel, byte[] low, byte[] high, boolean isRoot,
            Set<Long> seen, List<String> problems, LongConsumer visitor) throws IOException {
        if (!seen.add(block)) {
            problems.add("block " + block + ": referenced more than once (a cycle or a shared subtree)");
            return;
        }
        visitor.accept(block);
        Node n;
        try {
            n = op.read(block, expectedLevel);
        } catch (CorruptNodeException e) {
            problems.add(e.getMessage());
            return;
        }
        int level = n.level;
        int count = n.count();
        String where = "block " + block + " (level " + level + ")";
        if (count > spec.capacity(level)) {
            problems.add(where + ": " + count + " entries, more than the capacity " + spec.capacity(level));
        }
        if (isRoot) {
            if (level > 0 && count < 2) {
                problems.add(where + ": internal root with " + count + " children, needs at least 2");
            }
        } else if (count < spec.minEntries(level)) {
            problems.add(where + ": " + count + " entries, fewer than the minimum " + spec.minEntries(level));
        }
        byte[][] keys = new byte[count][];
        long[] children = new long[level > 0 ? count : 0];
        for (int i = 0; i < count; i++) {
            keys[i] = n.keyCopy(i);
            if (level > 0) {
                children[i] = n.child(i);
            }
        }
        op.release(n);

        HexFormat hex = HexFormat.of();
        for (int i = 1; i < count; i++) {
            if (Arrays.compareUnsigned(keys[i - 1], keys[i]) >= 0) {
                problems.add(where + ": keys out of order at entries " + (i - 1) + " and " + i + ": "
                        + hex.formatHex(keys[i - 1]) + " >= " + hex.formatHex(keys[i]));
            }
        }
        if (count == 0) {
            if (level > 0) {
                problems.add(where + ": internal node without children");
            }
            return;
        }
        if (level > 0 && !Arrays.equals(keys[0], low)) {
            problems.add(where + ": first key " + hex.formatHex(keys[0]) + " differs from its lower bound "
                    + hex.formatHex(low) + " (the parent's key for it)");
        }
        if (Arrays.compareUnsigned(keys[0], low) < 0) {
            problems.add(where + ": key " + hex.formatHex(keys[0]) + " below the lower bound " + hex.formatHex(low)
                    + " set by its parent");
        }
        if (high != null && Arrays.compareUnsigned(keys[count - 1], high) >= 0) {
            problems.add(where + ": key " + hex.formatHex(keys[count - 1]) + " not below the upper bound "
                    + hex.formatHex(high) + " set by its parent");
        }
        for (int i = 0; i < children.length; i++) {
            byte[] childHigh = i + 1 < count ? keys[i + 1] : high;
            validateNode(op, children[i], level - 1, keys[i], childHigh, false, seen, problems, visitor);
        }
    }

    // ---- seeking (floor, ceiling, cursors) ----------------------------------------------------

    /** Entries copied out of one leaf, in the order a cursor returns them. */
    private static final class Slice {
        byte[] data = new byte[0];
        int entries;
        /** Whether leaves exist beyond this one in the direction of travel. */
        boolean more;
    }

    private Entry firstOf(Slice s) {
        if (s.entries == 0) {
            return null;
        }
        int es = keySize + valueSize;
        return new Entry(Arrays.copyOfRange(s.data, 0, keySize), Arrays.copyOfRange(s.data, keySize, es));
    }

    /**
     * Finds the leaf holding the first entry at or after {@code key} in the direction of travel
     * ({@code key} itself only if {@code inclusive}; null: the start in that direction) and copies
     * up to {@code limit} qualifying entries out of it. Keys in a leaf's range all live in that
     * leaf, so the answer is in the leaf the key leads to or, if none of its entries qualify, in the
     * next non-empty leaf that way, reached by walking up the path to the nearest ancestor with a
     * further child.
     */
    private Slice seek(MemorySegment key, boolean inclusive, boolean forward, int limit) throws IOException {
        ensureOpen();
        Slice out = new Slice();
        try (Op op = new Op()) {
            long[] blocks = new long[MAX_DEPTH];
            int[] index = new int[MAX_DEPTH];
            int[] counts = new int[MAX_DEPTH];
            int depth = 0;
            long block = root;
            int level = -1;
            boolean edge = key == null; // after a step sideways, take the edge child all the way down
            while (true) {
                Node n = op.read(block, level);
                blocks[depth] = block;
                counts[depth] = n.count();
                if (!n.isLeaf()) {
                    int i = edge ? (forward ? 0 : n.count() - 1) : n.childIndex(key);
                    index[depth] = i;
                    block = n.child(i);
                    level = n.level - 1;
                    op.release(n);
                    depth++;
                    continue;
                }
                int c = n.count();
                int from;
                int available;
                if (forward) {
                    from = edge ? 0 : n.lowerBound(key, inclusive);
                    available = c - from;
                } else {
                    from = edge ? c - 1 : n.lowerBound(key, !inclusive) - 1;
                    available = from + 1;
                }
                if (available > 0) {
                    n.copyEntries(from, Math.min(available, limit), forward, out);
                    op.release(n);
                    out.more = neighbourLevel(index, counts, depth, forward) >= 0;
                    op.complete();
                    return out;
                }
                op.release(n);
                int up = neighbourLevel(index, counts, depth, forward);
                if (up < 0) {
                    op.complete();
                    return out;
                }
                index[up] += forward ? 1 : -1;
                Node parent = op.read(blocks[up], depth - up);
                block = parent.child(index[up]);
                level = parent.level - 1;
                op.release(parent);
                depth = up + 1;
                edge = true;
            }
        }
    }

    /** The deepest level on the path with a child beyond the one taken, or -1. */
    private static int neighbourLevel(int[] index, int[] counts, int leafDepth, boolean forward) {
        for (int d = leafDepth - 1; d >= 0; d--) {
            if (forward ? index[d] + 1 < counts[d] : index[d] > 0) {
                return d;
            }
        }
        return -1;
    }

    /**
     * Cursor over a key range; keeps only the last key returned and a copy of the current leaf's
     * remaining entries, and re-descends from the root once per leaf.
     */
    private final class Cursor implements BTreeCursor {
        private final boolean forward;
        private byte[] bound;          // next descent starts here
        private boolean inclusive;     // whether bound itself qualifies
        private Slice slice;
        private int position;
        private boolean finished;
        private byte[] key;
        private byte[] value;

        Cursor(byte[] from, boolean forward) {
            this.forward = forward;
            this.bound = from;
            this.inclusive = true;
        }

        @Override
        public boolean next() throws IOException {
            if (slice == null || position == slice.entries) {
                if (finished) {
                    key = null;
                    value = null;
                    return false;
                }
                slice = seek(bound == null ? null : MemorySegment.ofArray(bound), inclusive, forward,
                        Integer.MAX_VALUE);
                position = 0;
                if (slice.entries == 0) {
                    finished = true;
                    key = null;
                    value = null;
                    return false;
                }
                finished = !slice.more;
                int es = keySize + valueSize;
                int lastOff = (slice.entries - 1) * es;
                bound = Arrays.copyOfRange(slice.data, lastOff, lastOff + keySize);
                inclusive = false;
            }
            int off = position * (keySize + valueSize);
            key = Arrays.copyOfRange(slice.data, off, off + keySize);
            value = Arrays.copyOfRange(slice.data, off + keySize, off + keySize + valueSize);
            position++;
            return true;
        }

        @Override
        public byte[] key() {
            if (key == null) {
                throw new IllegalStateException("no current entry: call next() and check that it returned true");
            }
            return key;
        }

        @Override
        public byte[] value() {
            if (value == null) {
                throw new IllegalStateException("no current entry: call next() and check that it returned true");
            }
            return value;
        }
    }

    // ---- plumbing -----------------------------------------------------------------------------

    /** Root-to-leaf path of a key: blocks, counts, child taken (leaf: search result). */
    private static final class Path {
        final long[] blocks = new long[MAX_DEPTH];
        final int[] index = new int[MAX_DEPTH];
        final int[] counts = new int[MAX_DEPTH];
        int depth;
    }

    /** Reads root to leaf for {@code key}; nothing stays pinned. */
    private Path descend(Op op, MemorySegment key) throws IOException {
        Path p = new Path();
        long block = root;
        int level = -1;
        for (int d = 0; ; d++) {
            Node n = op.read(block, level);
            p.blocks[d] = block;
            p.counts[d] = n.count();
            if (n.isLeaf()) {
                p.index[d] = n.search(key);
                p.depth = d;
                op.release(n);
                return p;
            }
            int i = n.childIndex(key);
            p.index[d] = i;
            block = n.child(i);
            level = n.level - 1;
            op.release(n);
        }
    }

    private void setRoot(long newRoot) throws IOException {
        root = newRoot;
        listener.rootChanged(newRoot);
    }

    private void ensureOpen() {
        if (root == NO_ROOT) {
            throw new IllegalStateException("tree " + treeId + " was destroyed");
        }
    }

    private MemorySegment keySegment(byte[] key) {
        if (key == null || key.length != keySize) {
            throw new IllegalArgumentException("key must be " + keySize + " bytes, got "
                    + (key == null ? "null" : key.length));
        }
        return MemorySegment.ofArray(key);
    }

    private static MemorySegment childValue(long block) {
        MemorySegment v = MemorySegment.ofArray(new byte[NodeCodec.CHILD_POINTER_SIZE]);
        v.set(CHILD, 0, block);
        return v;
    }

    /**
     * The pins of one public operation. Every node is obtained through it and released through it;
     * {@link #release} seals written nodes. Closing without {@link #complete} (an exception is on its
     * way) releases what is still pinned unsealed, as {@link NodeStore} prescribes for a failed
     * operation; closing a completed op with pins left is a bug in this class.
     */
    private final class Op implements AutoCloseable {
        private final ArrayList<Node> pinned = new ArrayList<>(NodeStore.MAX_PINS);
        private boolean completed;

        Node read(long block, int expectedLevel) throws IOException {
            return pin(block, store.read(block), false, expectedLevel);
        }

        Node write(long block, int expectedLevel) throws IOException {
            return pin(block, store.modify(block), true, expectedLevel);
        }

        /** A newly allocated block, formatted as an empty node of {@code level}. */
        Node fresh(long block, int level) throws IOException {
            MemorySegment seg = store.modify(block);
            NodeCodec.format(seg, block, spec, treeId, level);
            Node n = new Node(block, seg, true, level, spec);
            pinned.add(n);
            return n;
        }

        /** Checks the block before anyone reads it; a block that fails is unpinned at once. */
        private Node pin(long block, MemorySegment seg, boolean writable, int expectedLevel) throws IOException {
            try {
                NodeCodec.check(block, seg, spec, treeId, expectedLevel);
            } catch (CorruptNodeException e) {
                try {
                    store.release(block);
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
            Node n = new Node(block, seg, writable, NodeCodec.level(seg), spec);
            pinned.add(n);
            return n;
        }

        void release(Node n) throws IOException {
            if (!pinned.remove(n)) {
                throw new IllegalStateException("block " + n.block + " released twice");
            }
            if (n.writable) {
                NodeCodec.seal(n.seg, spec);
            }
            store.release(n.block);
        }

        void complete() {
            completed = true;
        }

        @Override
        public void close() throws IOException {
            if (pinned.isEmpty()) {
                return;
            }
            List<Long> leaked = new ArrayList<>();
            IOException failure = null;
            for (Node n : pinned) {
                leaked.add(n.block);
                try {
                    store.release(n.block);
                } catch (IOException e) {
                    if (failure == null) {
                        failure = e;
                    } else {
                        failure.addSuppressed(e);
                    }
                }
            }
            pinned.clear();
            if (completed) {
                throw new IllegalStateException("B+tree bug: blocks " + leaked + " still pinned at the end of an operation");
            }
            if (failure != null) {
                throw failure;
            }
        }
    }

    /** A pinned node: typed access to the entries of its block. */
    private static final class Node {
        final long block;
        final MemorySegment seg;
        final boolean writable;
        final int keySize;
        final int valueSize;
        int level;

        Node(long block, MemorySegment seg, boolean writable, int level, BTreeSpec spec) {
            this.block = block;
            this.seg = seg;
            this.writable = writable;
            this.level = level;
            this.keySize = spec.keySize();
            this.valueSize = spec.valueSize();
        }

        boolean isLeaf() {
            return level == 0;
        }

        int count() {
            return NodeCodec.count(seg);
        }

        void setCount(int c) {
            NodeCodec.setCount(seg, c);
        }

        int entrySize() {
            return keySize + (level == 0 ? valueSize : NodeCodec.CHILD_POINTER_SIZE);
        }

        long offset(int i) {
            return NodeCodec.HEADER_SIZE + (long) i * entrySize();
        }

        /** Unsigned comparison of entry i's key with {@code key}. */
        int compare(int i, MemorySegment key) {
            long off = offset(i);
            long m = MemorySegment.mismatch(seg, off, off + keySize, key, 0, keySize);
            if (m < 0) {
                return 0;
            }
            return Integer.compare(seg.get(ValueLayout.JAVA_BYTE, off + m) & 0xff,
                    key.get(ValueLayout.JAVA_BYTE, m) & 0xff);
        }

        /** Arrays.binarySearch convention: the index, or -(insertion point) - 1. */
        int search(MemorySegment key) {
            int lo = 0;
            int hi = count() - 1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                int c = compare(mid, key);
                if (c < 0) {
                    lo = mid + 1;
                } else if (c > 0) {
                    hi = mid - 1;
                } else {
                    return mid;
                }
            }
            return -lo - 1;
        }

        /** The first index whose key is {@code >= key} ({@code > key} when not inclusive). */
        int lowerBound(MemorySegment key, boolean inclusive) {
            int lo = 0;
            int hi = count();
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                int c = compare(mid, key);
                if (c < 0 || (c == 0 && !inclusive)) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo;
        }

        /** Internal node: the child whose range holds {@code key} (key[0] is never compared). */
        int childIndex(MemorySegment key) {
            int lo = 1;
            int hi = count();
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (compare(mid, key) <= 0) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo - 1;
        }

        long child(int i) {
            return seg.get(CHILD, offset(i) + keySize);
        }

        byte[] keyCopy(int i) {
            byte[] k = new byte[keySize];
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, offset(i), k, 0, keySize);
            return k;
        }

        MemorySegment keySegment(int i) {
            return MemorySegment.ofArray(keyCopy(i));
        }

        byte[] valueCopy(int i) {
            byte[] v = new byte[valueSize];
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, offset(i) + keySize, v, 0, valueSize);
            return v;
        }

        void setKey(int i, MemorySegment key) {
            MemorySegment.copy(key, 0, seg, offset(i), keySize);
        }

        void setValue(int i, MemorySegment value) {
            MemorySegment.copy(value, 0, seg, offset(i) + keySize, valueSize);
        }

        /** Shifts entries [i, count) right by {@code n} and grows the count by {@code n}. */
        void openGap(int i, int n) {
            int c = count();
            MemorySegment.copy(seg, offset(i), seg, offset(i + n), (long) (c - i) * entrySize());
            setCount(c + n);
        }

        /** Inserts an entry at {@code i}; {@code value} is a leaf value or an 8-byte child pointer. */
        void insertEntry(int i, MemorySegment key, MemorySegment value) {
            openGap(i, 1);
            long off = offset(i);
            MemorySegment.copy(key, 0, seg, off, keySize);
            MemorySegment.copy(value, 0, seg, off + keySize, entrySize() - keySize);
        }

        void removeEntry(int i) {
            removeRange(i, 1);
        }

        void removeRange(int i, int n) {
            int c = count();
            MemorySegment.copy(seg, offset(i + n), seg, offset(i), (long) (c - i - n) * entrySize());
            setCount(c - n);
        }

        /** Copies {@code n} entries starting at {@code from}, walking forward or backward, into {@code out}. */
        void copyEntries(int from, int n, boolean forward, Slice out) {
            int es = entrySize();
            out.data = new byte[n * es];
            for (int j = 0; j < n; j++) {
                int i = forward ? from + j : from - j;
                MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, offset(i), out.data, j * es, es);
            }
            out.entries = n;
        }

        /** Copies {@code n} entries from {@code src[from..]} over {@code dst[to..]} (counts unchanged). */
        static void move(Node src, int from, Node dst, int to, int n) {
            MemorySegment.copy(src.seg, src.offset(from), dst.seg, dst.offset(to), (long) n * src.entrySize());
        }
    }
}
