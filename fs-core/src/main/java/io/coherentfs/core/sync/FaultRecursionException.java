package io.coherentfs.core.sync;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;

/**
 * A fault on the mapping whose direct write disabled faults on this thread (M3): the direct
 * write's source buffer is a mapping of the file it writes. The fault fails with EFAULT
 * semantics; the direct-write loop catches it, drops its locks, brings the source in with no
 * lock held (a bounce copy) and retries, so such a write makes progress instead of deadlocking
 * against its own BLOCK lock.
 */
public final class FaultRecursionException extends ErrnoException {
    private static final long serialVersionUID = 1L;

    private final long mappingOrder;

    public FaultRecursionException(long mappingOrder) {
        super(Errno.EFAULT, "fault",
                "fault on mapping " + mappingOrder + " while its own direct write has faults disabled");
        this.mappingOrder = mappingOrder;
    }

    /** The order key (inode number) of the mapping faulted on. */
    public long mappingOrder() {
        return mappingOrder;
    }
}
