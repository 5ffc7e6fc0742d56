package io.coherentfs.core.fsck;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DeviceGeometry;
import io.coherentfs.blockdev.IoCallback;
import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * A copy-on-write view of a device that never writes it: writes land in memory (whole 4 KiB
 * blocks), reads see them over the device's bytes. fsck checks through one so that a read-only
 * check ({@code -n}) can still replay the journal — in memory — and look at the image as the
 * next mount would, without changing a byte of the device.
 *
 * <p>Requests must be 4 KiB aligned in offset and length (everything coherentfs does is).
 * Asynchronous requests are served synchronously on the caller's thread. Flush and discard do
 * nothing. Thread-safe (the journal's commit thread may write while fsck reads).
 */
final class OverlayDevice implements BlockDevice {
    private static final int BS = 4096;

    private final BlockDevice base;
    private final Map<Long, byte[]> written = new HashMap<>();

    OverlayDevice(BlockDevice base) {
        this.base = base;
    }

    /** Blocks written to the overlay so far. */
    synchronized int blocksWritten() {
        return written.size();
    }

    @Override
    public DeviceGeometry geometry() {
        return base.geometry();
    }

    @Override
    public boolean isReadOnly() {
        return false;
    }

    @Override
    public String engineName() {
        return "overlay(" + base.engineName() + ")";
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        checkAligned("read", offset, dst.byteSize());
        base.read(offset, dst);
        synchronized (this) {
            if (written.isEmpty()) {
                return;
            }
            for (long at = 0; at < dst.byteSize(); at += BS) {
                byte[] b = written.get((offset + at) / BS);
                if (b != null) {
                    MemorySegment.copy(b, 0, dst, ValueLayout.JAVA_BYTE, at, BS);
                }
            }
        }
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        checkAligned("write", offset, src.byteSize());
        if (offset + src.byteSize() > size()) {
            throw new ErrnoException.NoSpaceException("write", "past the end of the device");
        }
        synchronized (this) {
            for (long at = 0; at < src.byteSize(); at += BS) {
                written.put((offset + at) / BS, src.asSlice(at, BS).toArray(ValueLayout.JAVA_BYTE));
            }
        }
    }

    private static void checkAligned(String what, long offset, long length) throws ErrnoException {
        if (offset % BS != 0 || length % BS != 0) {
            throw new ErrnoException.InvalidArgumentException(what, "overlay IO must be 4 KiB aligned: offset "
                    + offset + ", length " + length);
        }
    }

    @Override
    public void flush() {
    }

    @Override
    public void fsync() {
    }

    @Override
    public void discard(long offset, long length) {
    }

    @Override
    public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
        try {
            read(offset, dst);
            callback.onComplete(null);
        } catch (IOException e) {
            callback.onComplete(e);
        }
    }

    @Override
    public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
        try {
            write(offset, src);
            callback.onComplete(null);
        } catch (IOException e) {
            callback.onComplete(e);
        }
    }

    @Override
    public void submitFlush(boolean dataOnly, IoCallback callback) {
        callback.onComplete(null);
    }

    /** Drops the overlay; the base device stays open (it belongs to the caller). */
    @Override
    public void close() {
        synchronized (this) {
            written.clear();
        }
    }
}
