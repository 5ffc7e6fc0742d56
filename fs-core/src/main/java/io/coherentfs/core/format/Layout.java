package io.coherentfs.core.format;

import io.coherentfs.blockdev.error.ErrnoException;

/**
 * Where the fixed regions of a coherentfs image lie (docs/STORAGE.md, "Regions"): the
 * superblock at block 0, the journal right after it, then the free-space bitmap, then blocks
 * allocated on demand, and the backup superblock in the last block.
 *
 * @param blockCount       4 KiB blocks on the device
 * @param journalStart     first journal block (1)
 * @param journalBlocks    journal length: 1/256 of the device, clamped to [256, 32768] blocks
 * @param bitmapStart      first free-space bitmap block
 * @param bitmapBlocks     enough bitmap blocks to cover every block of the device
 * @param firstDataBlock   first block the allocator may hand out
 * @param backupSuperblock the last block
 */
public record Layout(long blockCount, long journalStart, long journalBlocks, long bitmapStart, long bitmapBlocks,
        long firstDataBlock, long backupSuperblock) {

    public static final int BLOCK_SIZE = 4096;
    /** Smaller devices cannot hold the minimum journal and a useful amount of data. */
    public static final long MINIMUM_BYTES = 8L << 20;
    static final long MIN_JOURNAL_BLOCKS = 256;
    static final long MAX_JOURNAL_BLOCKS = 32768;

    /**
     * The layout mkfs chooses for a device of {@code deviceBytes}.
     *
     * @param blocksPerBitmapBlock how many device blocks one bitmap block covers (the allocator's
     *     on-disk format decides)
     */
    public static Layout forDevice(long deviceBytes, long blocksPerBitmapBlock) throws ErrnoException {
        if (deviceBytes < MINIMUM_BYTES) {
            throw new ErrnoException.InvalidArgumentException("mkfs", "device too small: " + deviceBytes
                    + " bytes, coherentfs needs at least " + MINIMUM_BYTES + " (8 MiB)");
        }
        long blocks = deviceBytes / BLOCK_SIZE;
        long journal = Math.clamp(blocks / 256, MIN_JOURNAL_BLOCKS, MAX_JOURNAL_BLOCKS);
        long bitmap = (blocks + blocksPerBitmapBlock - 1) / blocksPerBitmapBlock;
        long journalStart = 1;
        long bitmapStart = journalStart + journal;
        return new Layout(blocks, journalStart, journal, bitmapStart, bitmap, bitmapStart + bitmap, blocks - 1);
    }

    /** Blocks the allocator may hand out: everything but the fixed regions. */
    public long dataBlocks() {
        return backupSuperblock - firstDataBlock;
    }

    /**
     * Checks that the regions are in order, inside the device and do not overlap; returns a
     * description of the first problem, or null.
     */
    public String problem() {
        if (journalStart != 1) {
            return "journal starts at " + journalStart + ", not 1";
        }
        if (journalBlocks < MIN_JOURNAL_BLOCKS) {
            return "journal of " + journalBlocks + " blocks is below the minimum " + MIN_JOURNAL_BLOCKS;
        }
        if (bitmapStart != journalStart + journalBlocks) {
            return "bitmap starts at " + bitmapStart + ", not right after the journal";
        }
        if (bitmapBlocks < 1 || firstDataBlock != bitmapStart + bitmapBlocks) {
            return "bitmap region [" + bitmapStart + ", +" + bitmapBlocks + ") does not end at the first data block "
                    + firstDataBlock;
        }
        if (backupSuperblock != blockCount - 1 || firstDataBlock >= backupSuperblock) {
            return "regions do not fit a device of " + blockCount + " blocks";
        }
        return null;
    }
}
