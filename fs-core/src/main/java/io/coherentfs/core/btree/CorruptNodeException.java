package io.coherentfs.core.btree;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;

/**
 * EUCLEAN ("Structure needs cleaning"): a metadata block failed its checksum or does not hold
 * what the reader expected (wrong magic, wrong owner, wrong level, impossible entry count). The
 * tree throws this instead of ever interpreting such a block, so a caller sees either correct data
 * or this exception, never garbage. The message starts with {@code "metadata block N: "}.
 */
public final class CorruptNodeException extends ErrnoException {
    private final long block;
    private final String problem;

    public CorruptNodeException(long block, String problem) {
        super(Errno.EUCLEAN, "metadata block " + block, problem);
        this.block = block;
        this.problem = problem;
    }

    /** The block number (in 4 KiB blocks from the start of the device) that is damaged. */
    public long block() {
        return block;
    }

    /** What is wrong with it, e.g. "checksum mismatch: stored 0x1234abcd, computed 0x0badf00d". */
    public String problem() {
        return problem;
    }

    /** {@code "metadata block N: <problem> (EUCLEAN: Structure needs cleaning)"}. */
    @Override
    public String getMessage() {
        return "metadata block " + block + ": " + problem + " (" + Errno.EUCLEAN.name() + ": "
                + Errno.EUCLEAN.message() + ")";
    }
}
