package io.coherentfs.core.alloc;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Where {@link BlockAllocator#writeDirtyBlocks} delivers the sealed images of changed bitmap
 * blocks: the journal (which logs them as metadata of the transaction) or, for mkfs, tests and
 * tools, the device itself ({@link BitmapDeviceIO#sink}).
 *
 * <p>The allocator calls the sink <em>without</em> holding its state lock, so allocations go on
 * meanwhile and the sink may take journal locks or do IO. It holds its write-out lock, which
 * orders deliveries (a newer image of a block always arrives after an older one): the sink must
 * not call {@link BlockAllocator#writeDirtyBlocks} itself.
 */
@FunctionalInterface
public interface BlockSink {
    /**
     * Accepts the new content of bitmap block {@code block}.
     *
     * @param block the device block number the image belongs at
     * @param image exactly 4096 bytes, sealed (magic and CRC32C set); read-only, valid only during
     *              the call: copy it
     */
    void write(long block, MemorySegment image) throws IOException;
}
