package io.coherentfs.blockdev.engine;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Moves bytes between native memory and a file descriptor asynchronously. Engines are raw: one
 * submission is one read(2)/write(2)/preadv(2)/pwritev(2)/fsync(2)-equivalent and may complete short; continuing a
 * short transfer and turning errnos into exceptions is the device's job ({@code DirectDevice}).
 *
 * <p>Completions run on the engine's completion thread(s), which are the engine's "interrupt
 * context": a {@link Completion} must not block. It may submit further requests.
 */
public interface IoEngine extends AutoCloseable {

    /** The outcome of one request: bytes moved (0 for fsync), or -errno. */
    @FunctionalInterface
    interface Completion {
        void complete(long result);
    }

    /** "io_uring" or "thread-pool". */
    String name();

    void submitRead(int fd, long offset, MemorySegment buffer, Completion completion);

    void submitWrite(int fd, long offset, MemorySegment buffer, Completion completion);

    /**
     * One preadv(2)-equivalent into {@code buffers} laid end to end from {@code offset}: 1 to
     * {@code IOV_MAX} native segments. The engine may read the list until the request completes,
     * so it must not change meanwhile; it keeps its own struct iovec array alive that long.
     */
    void submitReadv(int fd, long offset, List<MemorySegment> buffers, Completion completion);

    /** One pwritev(2)-equivalent; see {@link #submitReadv}. */
    void submitWritev(int fd, long offset, List<MemorySegment> buffers, Completion completion);

    /** fdatasync when {@code dataOnly}, else fsync, of everything written through {@code fd} that completed. */
    void submitFsync(int fd, boolean dataOnly, Completion completion);

    /** Waits until every submitted request has completed, then frees the engine. */
    @Override
    void close();
}
