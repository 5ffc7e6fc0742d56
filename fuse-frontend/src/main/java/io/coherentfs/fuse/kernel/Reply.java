package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One worker thread's reply buffer: fuse_out_header followed by room for any fixed-size or small
 * variable reply (entries, attributes, names, xattr values and lists up to 64 KiB, directory
 * pages). A READ's data goes as a second iovec straight from the caller's (aligned) buffer.
 *
 * <p>Used by its worker thread only; {@link #begin} starts each request's reply, and exactly one
 * send (or {@link #none}) finishes it.
 */
final class Reply {
    /** Payload room: XATTR_SIZE_MAX / XATTR_LIST_MAX (64 KiB) with space to spare. */
    static final int PAYLOAD_CAPACITY = 128 * 1024;

    private final FuseChannel channel;
    private final MemorySegment buffer;
    private final MemorySegment iov;
    private long unique;
    private boolean sent;

    Reply(FuseChannel channel, Arena arena) {
        this.channel = channel;
        this.buffer = arena.allocate(FuseAbi.OUT_HEADER_BYTES + PAYLOAD_CAPACITY, 4096);
        this.iov = arena.allocate(2 * LinuxSyscalls.IOVEC_BYTES, 8);
    }

    void begin(long unique) {
        this.unique = unique;
        this.sent = false;
    }

    boolean sent() {
        return sent;
    }

    /** Where the payload goes; its first {@code n} bytes are sent by {@link #send(int)}. */
    MemorySegment payload() {
        return buffer.asSlice(FuseAbi.OUT_HEADER_BYTES, PAYLOAD_CAPACITY);
    }

    /** Success with the first {@code n} bytes of {@link #payload()}. */
    void send(int n) throws ErrnoException {
        header(FuseAbi.OUT_HEADER_BYTES + n, 0);
        iov.set(JAVA_LONG, 0, buffer.address());
        iov.set(JAVA_LONG, 8, FuseAbi.OUT_HEADER_BYTES + (long) n);
        finish(1);
    }

    /** Success with {@code data} as the payload, sent from where it is. */
    void sendData(MemorySegment data) throws ErrnoException {
        header(FuseAbi.OUT_HEADER_BYTES + (int) data.byteSize(), 0);
        iov.set(JAVA_LONG, 0, buffer.address());
        iov.set(JAVA_LONG, 8, FuseAbi.OUT_HEADER_BYTES);
        iov.set(JAVA_LONG, 16, data.address());
        iov.set(JAVA_LONG, 24, data.byteSize());
        finish(data.byteSize() == 0 ? 1 : 2);
    }

    void ok() throws ErrnoException {
        send(0);
    }

    /** Failure with the positive {@code errno}. */
    void error(int errno) throws ErrnoException {
        header(FuseAbi.OUT_HEADER_BYTES, -errno);
        iov.set(JAVA_LONG, 0, buffer.address());
        iov.set(JAVA_LONG, 8, FuseAbi.OUT_HEADER_BYTES);
        finish(1);
    }

    /** For FORGET, BATCH_FORGET and INTERRUPT, which the kernel expects no reply to. */
    void none() {
        sent = true;
    }

    private void header(int length, int error) {
        buffer.set(JAVA_INT, FuseAbi.OUT_LEN, length);
        buffer.set(JAVA_INT, FuseAbi.OUT_ERROR, error);
        buffer.set(JAVA_LONG, FuseAbi.OUT_UNIQUE, unique);
    }

    private void finish(int iovecs) throws ErrnoException {
        sent = true;
        channel.write(iov, iovecs); // false: interrupted or unmounted, nobody waits for it
    }
}
