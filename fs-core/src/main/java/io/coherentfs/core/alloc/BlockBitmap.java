package io.coherentfs.core.alloc;

import java.util.Arrays;

/**
 * One bit per device block (1 = not available, 0 = free) kept as {@code long[]} words, with a
 * running count of free blocks and the free-run search the allocator uses.
 *
 * <p>Bit {@code b} is bit {@code b % 64} of word {@code b / 64}, the same words
 * {@link BitmapFormat} stores on disk. Bits past {@link #totalBlocks()} in the last word are
 * always 0 and every search stops at {@code totalBlocks}.
 *
 * <h2>Search policy ({@link #find})</h2>
 * Goal-directed first fit, wrapping, with a largest-run fallback:
 * <ol>
 *   <li>Goal hit: if the goal block is free, the run starting there (up to {@code max} blocks) is
 *       taken when it has at least {@code min} blocks, even if a longer run exists elsewhere. A
 *       file appending at the end of its last extent then grows that extent in place; taking the
 *       short run costs no extra fragment (the rest has to go elsewhere either way) and fills the
 *       hole instead of splitting a big run.</li>
 *   <li>Otherwise the first free run of at least {@code max} blocks scanning forward from the goal
 *       to the end of the device, then from block 0 back up to the goal (first fit: keeps locality
 *       and is one linear pass; best fit would need a whole-device scan or a size index). The
 *       extent is the first {@code max} blocks of that run.</li>
 *   <li>No run that long anywhere: the longest free run (the first one in that same order among
 *       equals), if it has at least {@code min} blocks.</li>
 * </ol>
 * Cost: one pass over the words, skipping full words 64 blocks at a time (a 1 TiB device is 4 Mi
 * words, a few milliseconds for a full miss). A per-bitmap-block summary would make misses cheaper.
 *
 * <p>Not thread-safe: {@link BlockAllocator} guards its instances with its lock.
 */
public final class BlockBitmap {
    private final long totalBlocks;
    private final long[] words;
    private long freeBlocks;

    /** A bitmap of {@code totalBlocks} free blocks. */
    public BlockBitmap(long totalBlocks) {
        this(totalBlocks, new long[wordsFor(totalBlocks)]);
    }

    /** A bitmap over {@code words} (taken, not copied); bits past {@code totalBlocks} must be 0. */
    BlockBitmap(long totalBlocks, long[] words) {
        if (totalBlocks < 1 || totalBlocks > BitmapRegion.MAX_TOTAL_BLOCKS || words.length != wordsFor(totalBlocks)) {
            throw new IllegalArgumentException("bitmap of " + totalBlocks + " blocks with " + words.length + " words");
        }
        this.totalBlocks = totalBlocks;
        this.words = words;
        long used = 0;
        for (long w : words) {
            used += Long.bitCount(w);
        }
        int tailBits = (int) (totalBlocks % 64);
        if (tailBits != 0 && (words[words.length - 1] & (-1L << tailBits)) != 0) {
            throw new IllegalArgumentException("bits set past the end of the device");
        }
        this.freeBlocks = totalBlocks - used;
    }

    static int wordsFor(long totalBlocks) {
        return Math.toIntExact((totalBlocks + 63) / 64);
    }

    /** A copy with its own words. */
    public BlockBitmap copy() {
        return new BlockBitmap(totalBlocks, words.clone());
    }

    /** The backing words (not a copy); for {@link BitmapFormat}. */
    long[] words() {
        return words;
    }

    public long totalBlocks() {
        return totalBlocks;
    }

    /** Blocks whose bit is 0. */
    public long freeBlocks() {
        return freeBlocks;
    }

    public boolean isUsed(long block) {
        checkRange(block, 1);
        return (words[(int) (block >>> 6)] & (1L << block)) != 0;
    }

    /** True when every block of {@code [start, start + length)} is free. */
    public boolean isFree(long start, long length) {
        checkRange(start, length);
        return nextUsed(start) >= start + length;
    }

    /** True when every block of {@code [start, start + length)} is in use. */
    public boolean isUsed(long start, long length) {
        checkRange(start, length);
        long free = nextFree(start);
        return free < 0 || free >= start + length;
    }

    /** Sets every bit of {@code [start, start + length)}; returns how many were 0 before. */
    public long set(long start, long length) {
        checkRange(start, length);
        long changed = 0;
        long end = start + length;
        for (long b = start; b < end; ) {
            int wi = (int) (b >>> 6);
            long mask = mask(b, end);
            changed += Long.bitCount(~words[wi] & mask);
            words[wi] |= mask;
            b = ((long) wi + 1) << 6;
        }
        freeBlocks -= changed;
        return changed;
    }

    /** Clears every bit of {@code [start, start + length)}; returns how many were 1 before. */
    public long clear(long start, long length) {
        checkRange(start, length);
        long changed = 0;
        long end = start + length;
        for (long b = start; b < end; ) {
            int wi = (int) (b >>> 6);
            long mask = mask(b, end);
            changed += Long.bitCount(words[wi] & mask);
            words[wi] &= ~mask;
            b = ((long) wi + 1) << 6;
        }
        freeBlocks += changed;
        return changed;
    }

    /** The bits of the word holding {@code b} from {@code b} up to (excluding) {@code end}. */
    private static long mask(long b, long end) {
        long wordEnd = ((b >>> 6) + 1) << 6;
        long hi = Math.min(end, wordEnd);
        int from = (int) (b & 63);
        int bits = (int) (hi - b);
        return bits == 64 ? -1L : ((1L << bits) - 1) << from;
    }

    /** The first free block at or after {@code from}, or -1 when there is none. */
    public long nextFree(long from) {
        if (from < 0) {
            from = 0;
        }
        if (from >= totalBlocks) {
            return -1;
        }
        int wi = (int) (from >>> 6);
        long w = ~words[wi] & (-1L << from);
        while (true) {
            if (w != 0) {
                long b = ((long) wi << 6) + Long.numberOfTrailingZeros(w);
                return b < totalBlocks ? b : -1;
            }
            if (++wi >= words.length) {
                return -1;
            }
            w = ~words[wi];
        }
    }

    /** The first block in use at or after {@code from}, or {@link #totalBlocks()} when there is none. */
    public long nextUsed(long from) {
        if (from < 0) {
            from = 0;
        }
        if (from >= totalBlocks) {
            return totalBlocks;
        }
        int wi = (int) (from >>> 6);
        long w = words[wi] & (-1L << from);
        while (true) {
            if (w != 0) {
                return Math.min(totalBlocks, ((long) wi << 6) + Long.numberOfTrailingZeros(w));
            }
            if (++wi >= words.length) {
                return totalBlocks;
            }
            w = words[wi];
        }
    }

    /** The longest free run (the lowest among equals), or null when nothing is free. */
    public Extent largestFreeRun() {
        long bestStart = -1;
        long bestLength = 0;
        for (long s = nextFree(0); s >= 0; ) {
            long e = nextUsed(s);
            if (e - s > bestLength) {
                bestStart = s;
                bestLength = e - s;
            }
            s = nextFree(e);
        }
        return bestLength == 0 ? null : new Extent(bestStart, bestLength);
    }

    /**
     * A free extent of {@code min..max} blocks at or near {@code goal}, per the policy in the class
     * header; null when no free run has {@code min} blocks. Does not change the bitmap.
     *
     * @param goal the preferred first block; out-of-range goals mean block 0
     */
    public Extent find(long goal, long min, long max) {
        if (min < 1 || max < min) {
            throw new IllegalArgumentException("length range [" + min + ", " + max + "]");
        }
        if (goal < 0 || goal >= totalBlocks) {
            goal = 0;
        }
        if (freeBlocks < min) {
            return null;
        }
        if (!isUsed(goal)) {
            long runEnd = nextUsed(goal);
            long length = Math.min(runEnd - goal, max);
            if (length >= min) {
                return new Extent(goal, length);
            }
        }
        long bestStart = -1;
        long bestLength = 0;
        // Pass 0: runs starting in [goal, total); pass 1: runs starting in [0, goal), measured whole.
        for (int pass = 0; pass < 2; pass++) {
            long from = pass == 0 ? goal : 0;
            long startLimit = pass == 0 ? totalBlocks : goal;
            for (long s = nextFree(from); s >= 0 && s < startLimit; ) {
                long e = nextUsed(s);
                long length = e - s;
                if (length >= max) {
                    return new Extent(s, max);
                }
                if (length > bestLength) {
                    bestStart = s;
                    bestLength = length;
                }
                s = nextFree(e);
            }
        }
        return bestLength >= min ? new Extent(bestStart, bestLength) : null;
    }

    private void checkRange(long start, long length) {
        if (start < 0 || length < 1 || start + length > totalBlocks || start + length < start) {
            throw new IllegalArgumentException("blocks [" + start + ", " + (start + length)
                    + ") are not inside the device of " + totalBlocks + " blocks");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BlockBitmap other && other.totalBlocks == totalBlocks && Arrays.equals(other.words, words);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(words);
    }

    @Override
    public String toString() {
        return "bitmap of " + totalBlocks + " blocks, " + freeBlocks + " free";
    }
}
