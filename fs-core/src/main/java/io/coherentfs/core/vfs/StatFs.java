package io.coherentfs.core.vfs;

/** statfs(2) figures, in 4 KiB blocks and inodes. */
public record StatFs(long blockSize, long totalBlocks, long freeBlocks, long availableBlocks, long totalInodes,
        long freeInodes, int nameMax) {
}
