package io.coherentfs.core.btree;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A {@link DeviceNodeStore} over a real sparse image file under {@code target/test-images}, opened
 * O_DIRECT, that can be closed and reopened from disk. The store's region starts at block 1
 * (block 0 is left alone, as a superblock would be) and spans the image.
 */
final class ImageStore implements AutoCloseable {
    private static final AtomicLong SEQUENCE = new AtomicLong();
    static final long FIRST_BLOCK = 1;

    final Path image;
    private final int cacheBlocks;
    DirectDevice device;
    DeviceNodeStore store;

    private ImageStore(Path image, int cacheBlocks) {
        this.image = image;
        this.cacheBlocks = cacheBlocks;
    }

    /** A fresh image of {@code blocks} 4 KiB blocks with an empty store. */
    static ImageStore create(String name, long blocks, int cacheBlocks) throws IOException {
        Path path = Path.of("target", "test-images",
                "btree-" + name + "-" + ProcessHandle.current().pid() + "-" + SEQUENCE.incrementAndGet() + ".img")
                .toAbsolutePath();
        Files.deleteIfExists(path);
        ImageFiles.createSparse(path, blocks * NodeCodec.BLOCK_SIZE);
        ImageStore s = new ImageStore(path, cacheBlocks);
        try {
            s.device = DirectDevice.open(path);
            s.store = DeviceNodeStore.format(s.device, FIRST_BLOCK, blocks - FIRST_BLOCK, cacheBlocks);
        } catch (IOException | RuntimeException e) {
            try {
                s.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return s;
    }

    /** Flushes, closes store and device, and opens both again from the image. */
    void reopen() throws IOException {
        closeDevice();
        device = DirectDevice.open(image);
        store = DeviceNodeStore.open(device, FIRST_BLOCK, cacheBlocks);
    }

    /** Flushes and closes store and device, leaving the image for inspection or tampering. */
    void closeDevice() throws IOException {
        try {
            if (store != null) {
                store.close();
            }
        } finally {
            store = null;
            if (device != null) {
                device.close();
            }
            device = null;
        }
    }

    /** Opens the device and store again after {@link #closeDevice}. */
    void openDevice() throws IOException {
        device = DirectDevice.open(image);
        store = DeviceNodeStore.open(device, FIRST_BLOCK, cacheBlocks);
    }

    @Override
    public void close() throws IOException {
        try {
            if (store != null) {
                try {
                    store.close();
                } catch (IllegalStateException e) {
                    // a test that failed mid-operation: nothing more to keep
                }
            }
            if (device != null) {
                device.close();
            }
        } finally {
            Files.deleteIfExists(image);
        }
    }
}
