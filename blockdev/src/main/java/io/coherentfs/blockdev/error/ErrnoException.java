package io.coherentfs.blockdev.error;

import java.io.IOException;

/**
 * An {@link IOException} that carries a Linux errno and the call that failed. Every errno
 * coherentfs sees or produces travels as one of these (or a subclass), so that the FUSE frontend
 * can reply with exactly the errno a kernel filesystem would, and a reader of a log knows which
 * call failed and why.
 *
 * <p>{@link #of} picks the typed subclass for the errnos that callers handle specially.
 */
public class ErrnoException extends IOException {
    private final int errno;
    private final String call;

    public ErrnoException(int errno, String call, String detail) {
        super(call + ": " + Errno.describe(errno) + (detail == null || detail.isEmpty() ? "" : ": " + detail));
        this.errno = errno;
        this.call = call;
    }

    public ErrnoException(Errno errno, String call, String detail) {
        this(errno.code(), call, detail);
    }

    /** The positive errno value. */
    public int errno() {
        return errno;
    }

    /** The failing call, e.g. "pwrite" or "io_uring_setup". */
    public String call() {
        return call;
    }

    /** The typed exception for {@code errno}. */
    public static ErrnoException of(int errno, String call, String detail) {
        Errno e = Errno.of(errno);
        if (e == null) {
            return new ErrnoException(errno, call, detail);
        }
        return switch (e) {
            case EINVAL -> new InvalidArgumentException(call, detail);
            case ENOSPC -> new NoSpaceException(call, detail);
            case EIO -> new MediaErrorException(call, detail);
            case EBUSY -> new BusyException(call, detail);
            case ENOENT -> new NoEntryException(call, detail);
            case EACCES, EPERM -> new PermissionException(errno, call, detail);
            case EROFS -> new ReadOnlyException(call, detail);
            case EOPNOTSUPP, ENOTTY, ENOSYS -> new NotSupportedException(errno, call, detail);
            default -> new ErrnoException(errno, call, detail);
        };
    }

    /** EINVAL. */
    public static class InvalidArgumentException extends ErrnoException {
        public InvalidArgumentException(String call, String detail) {
            super(Errno.EINVAL, call, detail);
        }
    }

    /**
     * EINVAL for direct IO whose offset, length or memory address breaks the device's alignment;
     * the message says what was required and what was given.
     */
    public static final class MisalignedIoException extends InvalidArgumentException {
        public MisalignedIoException(String call, String what, long given, long required) {
            super(call, what + " " + given + " (0x" + Long.toHexString(given) + ") is not a multiple of "
                    + required + " as O_DIRECT on this device requires");
        }
    }

    /** ENOSPC: the device, or a write limit set on it, is full. */
    public static final class NoSpaceException extends ErrnoException {
        public NoSpaceException(String call, String detail) {
            super(Errno.ENOSPC, call, detail);
        }
    }

    /** EIO: the medium failed the request. */
    public static final class MediaErrorException extends ErrnoException {
        public MediaErrorException(String call, String detail) {
            super(Errno.EIO, call, detail);
        }
    }

    /** EBUSY: e.g. a block device already opened exclusively (mounted) elsewhere. */
    public static final class BusyException extends ErrnoException {
        public BusyException(String call, String detail) {
            super(Errno.EBUSY, call, detail);
        }
    }

    /** ENOENT. */
    public static final class NoEntryException extends ErrnoException {
        public NoEntryException(String call, String detail) {
            super(Errno.ENOENT, call, detail);
        }
    }

    /** EACCES or EPERM. */
    public static final class PermissionException extends ErrnoException {
        public PermissionException(int errno, String call, String detail) {
            super(errno, call, detail);
        }
    }

    /** EROFS: a write to a device opened read-only. */
    public static final class ReadOnlyException extends ErrnoException {
        public ReadOnlyException(String call, String detail) {
            super(Errno.EROFS, call, detail);
        }
    }

    /** EOPNOTSUPP, ENOTTY or ENOSYS: the kernel, device or filesystem does not offer the call. */
    public static final class NotSupportedException extends ErrnoException {
        public NotSupportedException(int errno, String call, String detail) {
            super(errno, call, detail);
        }
    }
}
