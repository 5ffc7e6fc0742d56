package io.coherentfs.core.alloc;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Reads and writes a bitmap region straight on a {@link BlockDevice}: mkfs ({@link #format}),
 * mount ({@link #load}) and, for tools and tests, a {@link BlockSink} that writes sealed bitmap
 * blocks in place ({@link #sink}). Writing in place is not crash-consistent; the mounted
 * filesystem sends bitmap blocks through the journal instead.
 *
 * <p>Devices are O_DIRECT: all IO goes through 4096-aligned native buffers from an
 * {@link AlignedBufferPool}, at block-aligned offsets, in chunks of up to
 * {@value #CHUNK_BLOCKS} blocks.
 */
public final class BitmapDeviceIO {
    /** Bitmap blocks per read or write request (1 MiB). */
    static final int CHUNK_BLOCKS = 256;
    private static final int BS = BitmapFormat.BLOCK_SIZE;

    private BitmapDeviceIO() {
    }

    /**
     * Writes a fresh bitmap region: every block free except the bitmap region itself and the
     * extents in {@code inUse} (superblock, journal, backup superblock, ...), then flushes the device.
     *
     * @return the formatted in-memory bitmap
     * @throws IllegalArgumentException when the region or an extent does not fit the device
     */
    public static BlockBitmap format(BlockDevice device, AlignedBufferPool pool, BitmapRegion region,
            List<Extent> inUse) throws IOException {
        requireFits(device, region);
        BlockBitmap bitmap = new BlockBitmap(region.totalBlocks());
        bitmap.set(region.start(), region.blockCount());
        for (Extent e : inUse) {
            if (e.end() > region.totalBlocks()) {
                throw new IllegalArgumentException(e + " is past the end of the device (" + region.totalBlocks() + " blocks)");
            }
            bitmap.set(e.start(), e.length());
        }
        writeAll(device, pool, region, bitmap);
        device.flush();
        return bitmap;
    }

    /** Writes every bitmap block of {@code region} from {@code bitmap} (no flush). */
    public static void writeAll(BlockDevice device, AlignedBufferPool pool, BitmapRegion region, BlockBitmap bitmap)
            throws IOException {
        requireFits(device, region);
        long count = region.blockCount();
        for (long first = 0; first < count; first += CHUNK_BLOCKS) {
            int n = (int) Math.min(CHUNK_BLOCKS, count - first);
            try (AlignedBuffer buf = pool.allocate((long) n * BS)) {
                MemorySegment seg = buf.segment();
                for (int i = 0; i < n; i++) {
                    BitmapFormat.encode(region, first + i, bitmap, seg.asSlice((long) i * BS, BS));
                }
                device.write((region.start() + first) * BS, seg);
            }
        }
    }

    /**
     * Reads and checks the whole bitmap region.
     *
     * @throws ErrnoException EUCLEAN naming the first bitmap block that fails its checksum or
     *     header check, or when the bitmap region itself is not marked in use
     */
    public static BlockBitmap load(BlockDevice device, AlignedBufferPool pool, BitmapRegion region) throws IOException {
        requireFits(device, region);
        long[] words = new long[BlockBitmap.wordsFor(region.totalBlocks())];
        long count = region.blockCount();
        for (long first = 0; first < count; first += CHUNK_BLOCKS) {
            int n = (int) Math.min(CHUNK_BLOCKS, count - first);
            try (AlignedBuffer buf = pool.allocate((long) n * BS)) {
                MemorySegment seg = buf.segment();
                device.read((region.start() + first) * BS, seg);
                for (int i = 0; i < n; i++) {
                    BitmapFormat.decode(region, first + i, seg.asSlice((long) i * BS, BS), words);
                }
            }
        }
        BlockBitmap bitmap = new BlockBitmap(region.totalBlocks(), words);
        if (!bitmap.isUsed(region.start(), region.blockCount())) {
            throw new ErrnoException(Errno.EUCLEAN, "bitmap",
                    "the bitmap region " + region.extent() + " is not marked in use in itself");
        }
        return bitmap;
    }

    /**
     * A sink that writes each bitmap block image in place on {@code device} with a synchronous
     * aligned write (no flush: call {@link BlockDevice#flush()} after
     * {@link BlockAllocator#writeDirtyBlocks}).
     */
    public static BlockSink sink(BlockDevice device, AlignedBufferPool pool) {
        return (block, image) -> {
            try (AlignedBuffer buf = pool.allocate(BS)) {
                MemorySegment.copy(image, 0, buf.segment(), 0, BS);
                device.write(block * BS, buf.segment());
            }
        };
    }

    private static void requireFits(BlockDevice device, BitmapRegion region) {
        long deviceBlocks = device.size() / BS;
        if (region.totalBlocks() > deviceBlocks) {
            throw new IllegalArgumentException("the bitmap describes " + region.totalBlocks()
                    + " blocks but the device has " + deviceBlocks);
        }
    }
}
