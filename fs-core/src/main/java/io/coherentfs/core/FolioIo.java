package io.coherentfs.core;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.core.cache.Folio;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Moves folio memory to and from a device run with no copy: the folios of a run lie end to end
 * on the device from {@code physical}, wherever they are in memory. The caller owns the folios
 * (locked for reads; locked or under writeback for writes).
 */
final class FolioIo {
    private final BlockDevice device;

    FolioIo(BlockDevice device) {
        this.device = device;
    }

    /** Reads device blocks {@code physical ...} into the folios, in order. */
    void read(long physical, List<Folio> folios) throws IOException {
        if (folios.size() == 1) {
            device.read(physical * Folio.PAGE_SIZE, folios.getFirst().data());
            return;
        }
        CompletableFuture<?>[] all = new CompletableFuture<?>[folios.size()];
        for (int i = 0; i < all.length; i++) {
            all[i] = device.readAsync((physical + i) * Folio.PAGE_SIZE, folios.get(i).data());
        }
        await(CompletableFuture.allOf(all));
    }

    /** Writes the folios to device blocks {@code physical ...}, in order. */
    void write(long physical, List<Folio> folios) throws IOException {
        if (folios.size() == 1) {
            device.write(physical * Folio.PAGE_SIZE, folios.getFirst().data());
            return;
        }
        CompletableFuture<?>[] all = new CompletableFuture<?>[folios.size()];
        for (int i = 0; i < all.length; i++) {
            all[i] = device.writeAsync((physical + i) * Folio.PAGE_SIZE, folios.get(i).data());
        }
        await(CompletableFuture.allOf(all));
    }

    private static void await(CompletableFuture<Void> f) throws IOException {
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for folio IO");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException(e.getCause());
        }
    }
}
