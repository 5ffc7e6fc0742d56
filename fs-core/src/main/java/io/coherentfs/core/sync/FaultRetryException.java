package io.coherentfs.core.sync;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;

/**
 * A fault that found its mapping's add lock held in the wrong lock order while this thread's
 * direct write blocks another mapping: {@link FaultGuard#faultLock} dropped and re-took the
 * direct write's BLOCK lock ({@link FaultGuard.Outcome#RETRY}). The fault fails; the direct-write
 * loop invalidates its range again (pages may have been added while it held nothing) and copies
 * its source again.
 */
public final class FaultRetryException extends ErrnoException {
    private static final long serialVersionUID = 1L;

    public FaultRetryException(long mappingOrder) {
        super(Errno.EFAULT, "fault", "fault on mapping " + mappingOrder
                + " in the wrong lock order: locks were dropped, the direct write retries");
    }
}
