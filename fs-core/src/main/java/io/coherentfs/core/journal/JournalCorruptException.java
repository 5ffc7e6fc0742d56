package io.coherentfs.core.journal;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;

/**
 * EUCLEAN ("Structure needs cleaning"): a journal structure that must be valid is not, e.g. a
 * journal superblock whose checksum does not match. The message names the device block.
 * (A torn or corrupt <em>transaction</em> at the end of the log is not an error: replay stops
 * there, as a crash leaves it.)
 */
public final class JournalCorruptException extends ErrnoException {
    private final long block;

    public JournalCorruptException(long block, String detail) {
        super(Errno.EUCLEAN, "journal", "block " + block + ": " + detail);
        this.block = block;
    }

    /** The device block number of the bad structure. */
    public long block() {
        return block;
    }
}
