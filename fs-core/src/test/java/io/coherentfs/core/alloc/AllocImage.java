package io.coherentfs.core.alloc;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A real sparse image under {@code target/test-images}, opened O_DIRECT, with a bitmap region at
 * block 1 (block 0 and the last block are "superblocks", marked in use at format). Deleted on close.
 */
final class AllocImage implements AutoCloseable {
    private static final AtomicLong SEQUENCE = new AtomicLong();
    static final long BITMAP_START = 1;

    final Path path;
    final BitmapRegion region;
    final AlignedBufferPool pool = new AlignedBufferPool(1L << 20);
    DirectDevice device;

    private AllocImage(Path path, long blocks) {
        this.path = path;
        this.region = new BitmapRegion(BITMAP_START, blocks);
    }

    /** A fresh image of {@code blocks} blocks, formatted; returns the image (see {@link #format}). */
    static AllocImage create(String name, long blocks) throws IOException {
        Path path = Path.of("target", "test-images",
                "alloc-" + name + "-" + ProcessHandle.current().pid() + "-" + SEQUENCE.incrementAndGet() + ".img")
                .toAbsolutePath();
        Files.deleteIfExists(path);
        ImageFiles.createSparse(path, blocks * BitmapFormat.BLOCK_SIZE);
        AllocImage image = new AllocImage(path, blocks);
        image.device = DirectDevice.open(path);
        return image;
    }

    /** The extents format marks in use besides the bitmap region: the two superblocks. */
    List<Extent> superblocks() {
        return List.of(new Extent(0, 1), new Extent(region.totalBlocks() - 1, 1));
    }

    BlockAllocator format() throws IOException {
        return BlockAllocator.format(device, pool, region, superblocks());
    }

    BlockAllocator mount() throws IOException {
        return BlockAllocator.mount(device, pool, region);
    }

    BlockBitmap load() throws IOException {
        return BitmapDeviceIO.load(device, pool, region);
    }

    BlockSink sink() {
        return BitmapDeviceIO.sink(device, pool);
    }

    /** Closes and reopens the device (drops nothing: direct IO has no cache to lose). */
    void reopen() throws IOException {
        device.close();
        device = DirectDevice.open(path);
    }

    /** XORs byte {@code offset} of device block {@code block} with 0x40, behind the allocator's back. */
    void flipByte(long block, int offset) throws IOException {
        try (AlignedBuffer buf = pool.allocate(BitmapFormat.BLOCK_SIZE)) {
            device.read(block * BitmapFormat.BLOCK_SIZE, buf.segment());
            byte b = buf.segment().get(java.lang.foreign.ValueLayout.JAVA_BYTE, offset);
            buf.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, offset, (byte) (b ^ 0x40));
            device.write(block * BitmapFormat.BLOCK_SIZE, buf.segment());
        }
    }

    @Override
    public void close() throws IOException {
        try {
            device.close();
            pool.close();
        } finally {
            Files.deleteIfExists(path);
        }
    }
}
