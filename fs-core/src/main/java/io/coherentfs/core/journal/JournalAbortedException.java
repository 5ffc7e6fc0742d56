package io.coherentfs.core.journal;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;

/**
 * The journal has aborted (a journal or checkpoint write failed, as jbd2 aborts, or a caller
 * called {@link Journal#abort}) and takes no more changes; the filesystem must go read-only. Its
 * errno is the device's when the first failure was an {@link ErrnoException} (EIO for a media
 * error, ENOSPC for a full device), else EIO; the cause is the first failure.
 */
public final class JournalAbortedException extends ErrnoException {
    public JournalAbortedException(String call, Throwable firstFailure) {
        super(errnoOf(firstFailure), call,
                "journal aborted" + (firstFailure == null ? "" : " after: " + firstFailure.getMessage()));
        if (firstFailure != null) {
            initCause(firstFailure);
        }
    }

    private static int errnoOf(Throwable t) {
        return t instanceof ErrnoException e ? e.errno() : Errno.EIO.code();
    }
}
