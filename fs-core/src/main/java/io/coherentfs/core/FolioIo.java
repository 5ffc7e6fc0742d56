package io.coherentfs.core;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.IoVectors;
import io.coherentfs.core.cache.Folio;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Moves folio memory to and from a device run with no copy: the folios of a run lie end to end
 * on the device from {@code physical}, wherever they are in memory, and go to the device as one
 * vectored request (preadv/pwritev, or io_uring's READV/WRITEV). The caller owns the folios
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
        for (int i = 0; i < folios.size(); i += IoVectors.IOV_MAX) {
            List<Folio> part = folios.subList(i, Math.min(folios.size(), i + IoVectors.IOV_MAX));
            device.readv((physical + i) * Folio.PAGE_SIZE, segments(part));
        }
    }

    /** Writes the folios to device blocks {@code physical ...}, in order. */
    void write(long physical, List<Folio> folios) throws IOException {
        if (folios.size() == 1) {
            device.write(physical * Folio.PAGE_SIZE, folios.getFirst().data());
            return;
        }
        for (int i = 0; i < folios.size(); i += IoVectors.IOV_MAX) {
            List<Folio> part = folios.subList(i, Math.min(folios.size(), i + IoVectors.IOV_MAX));
            device.writev((physical + i) * Folio.PAGE_SIZE, segments(part));
        }
    }

    private static List<MemorySegment> segments(List<Folio> folios) {
        List<MemorySegment> out = new ArrayList<>(folios.size());
        for (Folio f : folios) {
            out.add(f.data());
        }
        return out;
    }
}
