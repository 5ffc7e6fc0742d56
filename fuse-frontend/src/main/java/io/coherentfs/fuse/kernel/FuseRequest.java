package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.MemorySegment;

/**
 * One request as read from /dev/fuse: fuse_in_header, then the opcode's body. A view over the
 * reading thread's buffer, valid until that thread reads the next request.
 *
 * @param message the whole request, header included ({@code len} bytes)
 */
public record FuseRequest(MemorySegment message, int opcode, long unique, long nodeid, int uid, int gid, int pid) {

    /** Parses the header of the {@code length} bytes the kernel wrote at the start of {@code buf}. */
    public static FuseRequest parse(MemorySegment buf, int length) throws ErrnoException {
        if (length < FuseAbi.IN_HEADER_BYTES) {
            throw new ErrnoException(Errno.EIO, "fuse", "short request of " + length + " bytes");
        }
        int len = buf.get(JAVA_INT, FuseAbi.IN_LEN);
        if (len != length) {
            throw new ErrnoException(Errno.EIO, "fuse", "request says " + len + " bytes, read returned " + length);
        }
        MemorySegment m = buf.asSlice(0, length);
        return new FuseRequest(m, m.get(JAVA_INT, FuseAbi.IN_OPCODE), m.get(JAVA_LONG, FuseAbi.IN_UNIQUE),
                m.get(JAVA_LONG, FuseAbi.IN_NODEID), m.get(JAVA_INT, FuseAbi.IN_UID), m.get(JAVA_INT, FuseAbi.IN_GID),
                m.get(JAVA_INT, FuseAbi.IN_PID));
    }

    /** The body after the header. */
    public MemorySegment body() {
        return message.asSlice(FuseAbi.IN_HEADER_BYTES);
    }

    /** The body, which must hold at least {@code minimum} bytes (a fixed struct), else EINVAL. */
    public MemorySegment body(int minimum) throws ErrnoException {
        MemorySegment b = body();
        if (b.byteSize() < minimum) {
            throw new ErrnoException(Errno.EINVAL, "fuse", "opcode " + opcode + ": body of " + b.byteSize()
                    + " bytes, at least " + minimum + " expected");
        }
        return b;
    }

    /** The NUL-terminated string at {@code offset} of {@code body}, without its NUL. */
    public static byte[] string(MemorySegment body, long offset) throws ErrnoException {
        long end = offset;
        long size = body.byteSize();
        while (end < size && body.get(JAVA_BYTE, end) != 0) {
            end++;
        }
        if (end >= size) {
            throw new ErrnoException(Errno.EINVAL, "fuse", "unterminated name in request");
        }
        return body.asSlice(offset, end - offset).toArray(JAVA_BYTE);
    }
}
