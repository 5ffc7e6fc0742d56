package io.coherentfs.blockdev;

import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A fixed-size array of bytes on stable storage, read and written with direct IO.
 *
 * <p>Contract every implementation keeps (and {@code BlockDeviceContract} tests):
 * <ul>
 *   <li>Offsets, lengths and buffer addresses follow {@link #geometry()}'s alignment, else the
 *       request fails with EINVAL saying what was required ({@code MisalignedIoException}).
 *       Buffers are native memory, e.g. from an {@link AlignedBufferPool}.</li>
 *   <li>A request either moves every byte or fails with an {@code ErrnoException}; a short
 *       transfer is continued, never silently returned. IO past {@link #size()} fails: EINVAL
 *       for reads, ENOSPC for writes.</li>
 *   <li>A write is durable only after a later {@link #flush} (or {@link #fsync}) completes;
 *       until then a power cut may drop it ({@code FaultyDevice.crash()} simulates that).</li>
 *   <li>All methods are thread-safe. Concurrent writes to overlapping ranges land in an
 *       unspecified order.</li>
 *   <li>Vectored requests ({@link #readv}, {@link #writev} and their asynchronous forms) move a
 *       list of segments laid end to end on the device from one offset, e.g. a run of 4 KiB
 *       folios from different slabs. Each segment follows the same alignment rules as a
 *       single-segment buffer; an empty list or more than {@link IoVectors#IOV_MAX} segments is
 *       EINVAL. The list may be reused once the call returns; the segments' memory must stay
 *       valid until the request completes.</li>
 * </ul>
 *
 * <p>The vectored defaults here are correct but not atomic: they check the whole request up
 * front, then loop over single-segment calls, so a failure can leave a prefix of the segments
 * transferred and a fault injector sees several requests. {@code DirectDevice} and
 * {@code FaultyDevice} override them so that a run reaches the device as one request.
 */
public interface BlockDevice extends AutoCloseable {

    DeviceGeometry geometry();

    default long size() {
        return geometry().size();
    }

    boolean isReadOnly();

    /** The name of the asynchronous engine behind the submit calls ("io_uring", "thread-pool"). */
    String engineName();

    /** Reads {@code dst.byteSize()} bytes at {@code offset}, blocking the caller. */
    void read(long offset, MemorySegment dst) throws IOException;

    /** Writes {@code src.byteSize()} bytes at {@code offset}, blocking the caller. */
    void write(long offset, MemorySegment src) throws IOException;

    /** Makes every completed write durable, with the metadata needed to read it (fdatasync). */
    void flush() throws IOException;

    /** fsync(2): like {@link #flush} and also the image file's own metadata. */
    void fsync() throws IOException;

    /** Tells the storage the range holds nothing worth keeping; it then reads as zeros or old data. */
    void discard(long offset, long length) throws IOException;

    /** Starts a read; {@code callback} runs when it is complete. */
    void submitRead(long offset, MemorySegment dst, IoCallback callback);

    /** Starts a write; {@code callback} runs when it is complete (not yet durable). */
    void submitWrite(long offset, MemorySegment src, IoCallback callback);

    /**
     * Reads {@code dsts} in order from {@code offset} on, blocking the caller: the first segment
     * gets the bytes at {@code offset}, the next the bytes after them, and so on.
     */
    default void readv(long offset, List<MemorySegment> dsts) throws IOException {
        ErrnoException bad = IoVectors.checkShape("preadv", offset, dsts, geometry());
        if (bad != null) {
            throw bad;
        }
        long at = offset;
        for (MemorySegment dst : dsts) {
            read(at, dst);
            at += dst.byteSize();
        }
    }

    /** Writes {@code srcs} end to end from {@code offset} on, blocking the caller. */
    default void writev(long offset, List<MemorySegment> srcs) throws IOException {
        ErrnoException bad = IoVectors.checkShape("pwritev", offset, srcs, geometry());
        if (bad != null) {
            throw bad;
        }
        long at = offset;
        for (MemorySegment src : srcs) {
            write(at, src);
            at += src.byteSize();
        }
    }

    /** Starts a vectored read (see {@link #readv}); {@code callback} runs when it is complete. */
    default void submitReadv(long offset, List<MemorySegment> dsts, IoCallback callback) {
        ErrnoException bad = IoVectors.checkShape("readv", offset, dsts, geometry());
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new SegmentChain(this, false, offset, List.copyOf(dsts), callback).start();
    }

    /** Starts a vectored write (see {@link #writev}); {@code callback} runs when it is complete. */
    default void submitWritev(long offset, List<MemorySegment> srcs, IoCallback callback) {
        ErrnoException bad = IoVectors.checkShape("writev", offset, srcs, geometry());
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new SegmentChain(this, true, offset, List.copyOf(srcs), callback).start();
    }

    /** Starts a flush ({@code dataOnly}: fdatasync, else fsync) of the writes completed so far. */
    void submitFlush(boolean dataOnly, IoCallback callback);

    /**
     * A future view of {@link #submitRead}. Dependent stages added without an executor run on the
     * engine's completion thread: keep them non-blocking, or use the {@code *Async} variants.
     */
    default CompletableFuture<Void> readAsync(long offset, MemorySegment dst) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        submitRead(offset, dst, futureCallback(f));
        return f;
    }

    /** A future view of {@link #submitWrite}; see {@link #readAsync} on where stages run. */
    default CompletableFuture<Void> writeAsync(long offset, MemorySegment src) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        submitWrite(offset, src, futureCallback(f));
        return f;
    }

    /** A future view of {@link #submitReadv}; see {@link #readAsync} on where stages run. */
    default CompletableFuture<Void> readvAsync(long offset, List<MemorySegment> dsts) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        submitReadv(offset, dsts, futureCallback(f));
        return f;
    }

    /** A future view of {@link #submitWritev}; see {@link #readAsync} on where stages run. */
    default CompletableFuture<Void> writevAsync(long offset, List<MemorySegment> srcs) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        submitWritev(offset, srcs, futureCallback(f));
        return f;
    }

    /** A future view of {@link #submitFlush}; see {@link #readAsync} on where stages run. */
    default CompletableFuture<Void> flushAsync(boolean dataOnly) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        submitFlush(dataOnly, futureCallback(f));
        return f;
    }

    private static IoCallback futureCallback(CompletableFuture<Void> f) {
        return error -> {
            if (error == null) {
                f.complete(null);
            } else {
                f.completeExceptionally(error);
            }
        };
    }

    /** Waits for outstanding asynchronous requests, then releases the device. */
    @Override
    void close() throws IOException;
}
