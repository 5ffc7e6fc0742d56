package io.coherentfs.core.alloc;

/**
 * The allocator's space figures at one moment, in 4 KiB blocks; all taken under one lock, so
 * they are consistent with each other.
 *
 * <ul>
 *   <li>{@code freeBlocks} (statfs f_bfree): blocks marked free in the newest bitmap, including
 *       blocks freed by transactions not yet checkpointed ({@code pendingFreeBlocks}); this is what
 *       the device will have free once the journal catches up, with no further action by anyone.</li>
 *   <li>{@code availableBlocks} (f_bavail): what a new reservation or allocation can get right now:
 *       {@code freeBlocks - pendingFreeBlocks - reservedBlocks}.</li>
 * </ul>
 * Invariants: {@code 0 <= availableBlocks}, {@code availableBlocks + reservedBlocks + pendingFreeBlocks
 * == freeBlocks <= totalBlocks}.
 *
 * @param totalBlocks       blocks of the device
 * @param freeBlocks        blocks not in use in the newest bitmap state
 * @param availableBlocks   free blocks neither reserved nor waiting for a checkpoint
 * @param reservedBlocks    blocks promised to delayed-allocation reservations
 * @param pendingFreeBlocks freed blocks waiting for their transaction's checkpoint
 */
public record StatFs(long totalBlocks, long freeBlocks, long availableBlocks, long reservedBlocks,
        long pendingFreeBlocks) {
}
