package io.coherentfs.core.alloc;

/**
 * Where the free-space bitmap of a device lives: {@link #blockCount()} consecutive bitmap blocks
 * starting at device block {@code start}, covering device blocks {@code [0, totalBlocks)}. Bitmap
 * block {@code i} (device block {@code start + i}) covers device blocks
 * {@code [i * BITS_PER_BLOCK, min((i + 1) * BITS_PER_BLOCK, totalBlocks))}; see {@link BitmapFormat}.
 *
 * @param start       device block number of the first bitmap block
 * @param totalBlocks blocks of the device the bitmap describes
 */
public record BitmapRegion(long start, long totalBlocks) {
    /** Largest device the in-memory bitmap handles: 2^31 64-bit words (512 TiB of 4 KiB blocks). */
    public static final long MAX_TOTAL_BLOCKS = (long) Integer.MAX_VALUE * 64;

    public BitmapRegion {
        if (totalBlocks < 1 || totalBlocks > MAX_TOTAL_BLOCKS) {
            throw new IllegalArgumentException("device of " + totalBlocks + " blocks: need 1.." + MAX_TOTAL_BLOCKS);
        }
        if (start < 0 || start + blocksFor(totalBlocks) > totalBlocks) {
            throw new IllegalArgumentException("bitmap region at block " + start + " (" + blocksFor(totalBlocks)
                    + " blocks) does not fit a device of " + totalBlocks + " blocks");
        }
    }

    /** Bitmap blocks needed for a device of {@code totalBlocks}: ceil(totalBlocks / BITS_PER_BLOCK). */
    public static long blocksFor(long totalBlocks) {
        return (totalBlocks + BitmapFormat.BITS_PER_BLOCK - 1) / BitmapFormat.BITS_PER_BLOCK;
    }

    /** Number of bitmap blocks. */
    public long blockCount() {
        return blocksFor(totalBlocks);
    }

    /** The bitmap blocks themselves, as an extent of the device. */
    public Extent extent() {
        return new Extent(start, blockCount());
    }

    /** Index (0-based) of the bitmap block that holds the bit of device block {@code block}. */
    public static long indexOf(long block) {
        return block / BitmapFormat.BITS_PER_BLOCK;
    }

    /** First device block covered by bitmap block {@code index}. */
    public long firstCovered(long index) {
        return index * BitmapFormat.BITS_PER_BLOCK;
    }

    /** Number of device blocks covered by bitmap block {@code index} (fewer in the last one). */
    public int coveredBy(long index) {
        return (int) Math.min(BitmapFormat.BITS_PER_BLOCK, totalBlocks - firstCovered(index));
    }
}
