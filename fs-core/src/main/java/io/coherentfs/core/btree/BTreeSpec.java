package io.coherentfs.core.btree;

/**
 * The shape of one B+tree instance: fixed key and value sizes, and from them the number of entries
 * a node holds. Every node of a tree records the key and value size in its header, so a block of
 * a tree with another shape is refused on load; the fan-out caps below are not recorded and must
 * be the same whenever a tree is opened (the validator reports nodes that exceed them).
 *
 * <p>Keys compare as unsigned byte strings (lexicographically, shorter never happens because all
 * keys have {@link #keySize()} bytes). Callers encode numbers big-endian so that byte order is
 * numeric order; the all-zero key is the smallest key and is the lower bound of the whole tree.
 *
 * @param keySize            bytes per key, at least 1
 * @param valueSize          bytes per value in leaves, 0 or more (0: the tree is a set of keys)
 * @param maxLeafEntries     cap on entries per leaf, at most what fits in a block; lower caps
 *                           make tall trees from few entries (tests, tools)
 * @param maxInternalEntries cap on children per internal node, likewise
 */
public record BTreeSpec(int keySize, int valueSize, int maxLeafEntries, int maxInternalEntries) {

    /** The smallest fan-out the rebalancing rules work with: leaves keep >= 1, internal nodes >= 2. */
    public static final int MIN_LEAF_CAPACITY = 2;
    public static final int MIN_INTERNAL_CAPACITY = 4;

    public BTreeSpec {
        if (keySize < 1) {
            throw new IllegalArgumentException("key size must be at least 1 byte, got " + keySize);
        }
        if (valueSize < 0) {
            throw new IllegalArgumentException("value size must not be negative, got " + valueSize);
        }
        int leafFit = NodeCodec.PAYLOAD_SIZE / (keySize + valueSize);
        int internalFit = NodeCodec.PAYLOAD_SIZE / (keySize + NodeCodec.CHILD_POINTER_SIZE);
        if (leafFit < MIN_LEAF_CAPACITY || internalFit < MIN_INTERNAL_CAPACITY) {
            throw new IllegalArgumentException("key size " + keySize + " and value size " + valueSize
                    + " leave room for " + leafFit + " leaf entries and " + internalFit
                    + " children per 4 KiB node; a B+tree needs at least " + MIN_LEAF_CAPACITY + " and "
                    + MIN_INTERNAL_CAPACITY);
        }
        if (maxLeafEntries < MIN_LEAF_CAPACITY || maxInternalEntries < MIN_INTERNAL_CAPACITY) {
            throw new IllegalArgumentException("fan-out caps must be at least " + MIN_LEAF_CAPACITY + " (leaf) and "
                    + MIN_INTERNAL_CAPACITY + " (internal), got " + maxLeafEntries + " and " + maxInternalEntries);
        }
        maxLeafEntries = Math.min(maxLeafEntries, leafFit);
        maxInternalEntries = Math.min(maxInternalEntries, internalFit);
    }

    /** A tree whose nodes hold as many entries as fit in a 4 KiB block. */
    public static BTreeSpec of(int keySize, int valueSize) {
        return new BTreeSpec(keySize, valueSize, Integer.MAX_VALUE, Integer.MAX_VALUE);
    }

    /** The same key and value sizes with smaller nodes (never larger than a block allows). */
    public BTreeSpec withMaxEntries(int leaf, int internal) {
        return new BTreeSpec(keySize, valueSize, leaf, internal);
    }

    /** Entries per leaf when full. */
    public int leafCapacity() {
        return maxLeafEntries;
    }

    /** Children per internal node when full. */
    public int internalCapacity() {
        return maxInternalEntries;
    }

    /** Fewest entries a non-root leaf keeps; below it a delete borrows from or merges with a sibling. */
    public int minLeafEntries() {
        return maxLeafEntries / 2;
    }

    /** Fewest children a non-root internal node keeps (the root keeps at least 2). */
    public int minInternalEntries() {
        return maxInternalEntries / 2;
    }

    int capacity(int level) {
        return level == 0 ? maxLeafEntries : maxInternalEntries;
    }

    int minEntries(int level) {
        return level == 0 ? minLeafEntries() : minInternalEntries();
    }

    int entrySize(int level) {
        return keySize + (level == 0 ? valueSize : NodeCodec.CHILD_POINTER_SIZE);
    }
}
