package io.coherentfs.core;

import java.util.Map;
import java.util.TreeMap;

/**
 * The logical blocks of one file that hold delayed allocations: data in dirty folios whose
 * blocks were reserved (counted against free space) but not yet chosen. Each block in the set
 * stands for one block of the filesystem's delalloc reservation; whoever removes blocks from the
 * set gives the same number back to the reservation (or allocates them from it at writeback).
 *
 * <p>Ranges {@code [start, end)} by start, coalesced. Thread-safe (its own monitor, a leaf lock
 * taken under any other). Membership checks that must be atomic with an extent-map change run
 * under the tree lock, which every change of this set that matters to them also holds.
 */
final class DelallocRanges {
    private final TreeMap<Long, Long> ranges = new TreeMap<>();
    private long blocks;

    /** Blocks in the set. */
    synchronized long blocks() {
        return blocks;
    }

    synchronized boolean contains(long block) {
        Map.Entry<Long, Long> e = ranges.floorEntry(block);
        return e != null && block < e.getValue();
    }

    /** Adds {@code [start, end)}, which must not overlap the set. */
    synchronized void add(long start, long end) {
        if (start >= end) {
            return;
        }
        Map.Entry<Long, Long> before = ranges.floorEntry(start);
        if (before != null && before.getValue() > start) {
            throw new IllegalStateException("delalloc [" + start + ", " + end + ") overlaps [" + before.getKey()
                    + ", " + before.getValue() + ")");
        }
        Map.Entry<Long, Long> after = ranges.ceilingEntry(start);
        if (after != null && after.getKey() < end) {
            throw new IllegalStateException("delalloc [" + start + ", " + end + ") overlaps [" + after.getKey()
                    + ", " + after.getValue() + ")");
        }
        long s = start;
        long e = end;
        if (before != null && before.getValue() == start) {
            s = before.getKey();
            ranges.remove(s);
        }
        if (after != null && after.getKey() == end) {
            e = after.getValue();
            ranges.remove(end);
        }
        ranges.put(s, e);
        blocks += end - start;
    }

    /** Removes whatever part of {@code [start, end)} is in the set; returns the blocks removed. */
    synchronized long remove(long start, long end) {
        if (start >= end) {
            return 0;
        }
        long removed = 0;
        Map.Entry<Long, Long> e = ranges.floorEntry(start);
        if (e == null || e.getValue() <= start) {
            e = ranges.higherEntry(start);
        }
        while (e != null && e.getKey() < end) {
            long s = e.getKey();
            long t = e.getValue();
            ranges.remove(s);
            if (s < start) {
                ranges.put(s, start);
            }
            if (t > end) {
                ranges.put(end, t);
            }
            removed += Math.min(t, end) - Math.max(s, start);
            e = ranges.higherEntry(s);
        }
        blocks -= removed;
        return removed;
    }

    /** The end of the run of set blocks starting at {@code block}, or {@code block} if it is not in the set. */
    synchronized long runEnd(long block) {
        Map.Entry<Long, Long> e = ranges.floorEntry(block);
        return e != null && block < e.getValue() ? e.getValue() : block;
    }

    /** The first set block at or after {@code block}, or -1. */
    synchronized long next(long block) {
        if (contains(block)) {
            return block;
        }
        Long k = ranges.higherKey(block);
        return k == null ? -1 : k;
    }

    @Override
    public synchronized String toString() {
        return "DelallocRanges" + ranges;
    }
}
