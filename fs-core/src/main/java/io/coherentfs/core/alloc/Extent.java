package io.coherentfs.core.alloc;

/**
 * A run of {@code length} consecutive device blocks starting at block {@code start}:
 * blocks {@code [start, start + length)}.
 *
 * @param start  first block number, {@code >= 0}
 * @param length number of blocks, {@code >= 1}
 */
public record Extent(long start, long length) {
    public Extent {
        if (start < 0 || length < 1 || start + length < start) {
            throw new IllegalArgumentException("not an extent: start " + start + ", length " + length);
        }
    }

    /** The first block after the extent. */
    public long end() {
        return start + length;
    }

    /** True when {@code block} lies inside the extent. */
    public boolean contains(long block) {
        return block >= start && block < end();
    }

    /** True when the two extents share at least one block. */
    public boolean overlaps(Extent other) {
        return start < other.end() && other.start < end();
    }

    @Override
    public String toString() {
        return length == 1 ? "block " + start : "blocks " + start + ".." + (end() - 1);
    }
}
