package io.coherentfs.core.fsck;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.core.meta.MetaOp;
import java.io.IOException;

/**
 * One inconsistency fsck found, and how (if at all) it is repaired.
 *
 * <p>A repair is either a {@link PreMountFix}, done on the raw device before the metadata store
 * is mounted (resetting a damaged journal, rebuilding an unreadable bitmap), or a {@link TxnFix},
 * run in a journal transaction of its own over the mounted store, like any filesystem operation.
 * A problem with neither is reported and left alone: fsck only repairs what it can repair without
 * guessing (no lost+found, no tree rebuilding).
 */
public final class Problem {
    /** When a transactional fix runs relative to the others. */
    enum Stage {
        /** Before everything else: marking referenced-but-free blocks used, so that no other fix can allocate them. */
        FIRST,
        NORMAL,
        /** Last: freeing leaked blocks. */
        LAST
    }

    /** What became of a problem. */
    public enum Status {
        /** Repaired (the re-check after repairing agrees). */
        REPAIRED,
        /** Repairable, but the check was read-only (-n). */
        NOT_REPAIRED_READ_ONLY,
        /** This fsck has no safe repair for it. */
        UNREPAIRABLE,
        /** The repair was tried and failed. */
        REPAIR_FAILED
    }

    @FunctionalInterface
    interface TxnFix {
        void apply(RepairContext ctx, MetaOp op) throws IOException;
    }

    @FunctionalInterface
    interface PreMountFix {
        void apply(BlockDevice device, AlignedBufferPool pool) throws IOException;
    }

    private final String pass;
    private final String message;
    private final String repairDescription;
    private final TxnFix txnFix;
    private final PreMountFix preMountFix;
    private final Stage stage;
    private Status status;
    private String failure;

    private Problem(String pass, String message, String repairDescription, TxnFix txnFix, PreMountFix preMountFix,
            Stage stage) {
        this.pass = pass;
        this.message = message;
        this.repairDescription = repairDescription;
        this.txnFix = txnFix;
        this.preMountFix = preMountFix;
        this.stage = stage;
        this.status = txnFix == null && preMountFix == null ? Status.UNREPAIRABLE : Status.NOT_REPAIRED_READ_ONLY;
    }

    static Problem unrepairable(String pass, String message) {
        return new Problem(pass, message, null, null, null, Stage.NORMAL);
    }

    static Problem fixable(String pass, String message, String repair, TxnFix fix) {
        return new Problem(pass, message, repair, fix, null, Stage.NORMAL);
    }

    static Problem fixable(String pass, String message, String repair, Stage stage, TxnFix fix) {
        return new Problem(pass, message, repair, fix, null, stage);
    }

    static Problem fixableBeforeMount(String pass, String message, String repair, PreMountFix fix) {
        return new Problem(pass, message, repair, null, fix, Stage.FIRST);
    }

    /** The pass that found it ("superblock", "inodes", "directories", ...). */
    public String pass() {
        return pass;
    }

    public String message() {
        return message;
    }

    /** What the repair does (null when there is none). */
    public String repair() {
        return repairDescription;
    }

    public boolean repairable() {
        return txnFix != null || preMountFix != null;
    }

    public Status status() {
        return status;
    }

    TxnFix txnFix() {
        return txnFix;
    }

    PreMountFix preMountFix() {
        return preMountFix;
    }

    Stage stage() {
        return stage;
    }

    void setStatus(Status status, String failure) {
        this.status = status;
        this.failure = failure;
    }

    /** One line for the report: the problem and what was done. */
    @Override
    public String toString() {
        String what = switch (status) {
            case REPAIRED -> "REPAIRED: " + repairDescription;
            case NOT_REPAIRED_READ_ONLY -> "not repaired (read-only check); would " + repairDescription;
            case UNREPAIRABLE -> "NOT REPAIRED: no safe repair";
            case REPAIR_FAILED -> "REPAIR FAILED (" + repairDescription + "): " + failure;
        };
        return "[" + pass + "] " + message + " -- " + what;
    }
}
