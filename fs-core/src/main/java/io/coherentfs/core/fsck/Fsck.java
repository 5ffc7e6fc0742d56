package io.coherentfs.core.fsck;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.core.journal.Journal;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.journal.MetaCache;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * fsck for coherentfs: checks every on-disk invariant and repairs what can be repaired safely,
 * through the journal, as the engine itself changes metadata. Exit codes as e2fsck's.
 *
 * <h2>How a run goes</h2>
 * <ol>
 *   <li><b>Check</b> ({@link Checker}, which lists the passes and what each verifies) through an
 *       {@link OverlayDevice}: the journal is replayed into memory, so the check sees the image
 *       as the next mount will, and writes nothing. This is the whole run for a read-only check
 *       ({@code -n}): a journal with transactions to replay is reported, not replayed.</li>
 *   <li><b>Repair</b> (unless read-only, and only if the check found something): the journal is
 *       replayed for real; repairs that must precede a mount run on the raw device (reset a
 *       damaged journal, rebuild an unreadable bitmap); then the metadata store is mounted and
 *       each remaining repair runs in a transaction of its own ({@link MetaStore#begin}): first
 *       marking referenced-but-free blocks in use (so no later repair can allocate them), then
 *       link counts, orphans, entries, parents, superblock counters, and last freeing leaked
 *       blocks. Unmounting commits, checkpoints and rewrites both superblock copies.</li>
 *   <li><b>Re-check</b> after repairing: the exit code is {@link #CORRECTED} only if a fresh
 *       check is clean, else {@link #UNCORRECTED} with what is left.</li>
 * </ol>
 * If the check is clean but the journal held transactions, a repairing run replays them (as a
 * mount would) and still exits {@link #CLEAN}: a journal to replay is normal after a crash.
 *
 * <p>fsck must not run on a mounted filesystem; block devices are opened O_EXCL, image files
 * are not locked. Not thread-safe; one run at a time per device.
 */
public final class Fsck {
    public static final int CLEAN = 0;
    public static final int CORRECTED = 1;
    public static final int UNCORRECTED = 4;
    public static final int OPERATIONAL_ERROR = 8;

    /** Journal credits of one repair transaction. */
    private static final int REPAIR_CREDITS = 64;

    /**
     * @param readOnly check only (-n): never write the device
     * @param progress told a line per pass and phase (e.g. printed to stderr); never null
     */
    public record Options(boolean readOnly, Consumer<String> progress) {
        public static final Options REPAIR = new Options(false, line -> { });
        public static final Options READ_ONLY = new Options(true, line -> { });

        public Options withProgress(Consumer<String> p) {
            return new Options(readOnly, p);
        }
    }

    private Fsck() {}

    /** Opens {@code image} (read-only for {@code -n}), checks and repairs it, closes it. */
    public static FsckReport run(Path image, Options options) {
        DirectDevice device;
        try {
            device = DirectDevice.open(image, DirectDevice.Options.DEFAULT.withReadOnly(options.readOnly()));
        } catch (IOException | RuntimeException e) {
            return operationalError("cannot open " + image + ": " + e.getMessage(), List.of(), List.of());
        }
        try (device) {
            return run(device, options);
        } catch (IOException e) {
            return operationalError("closing " + image + ": " + e.getMessage(), List.of(), List.of());
        }
    }

    /** Checks and repairs {@code device}, which stays open (the caller's). */
    public static FsckReport run(BlockDevice device, Options options) {
        Consumer<String> progress = options.progress();
        try (AlignedBufferPool pool = new AlignedBufferPool()) {
            Checker first = check(device, pool, progress);
            if (first.fatal != null) {
                return operationalError(first.fatal, List.of(), first.notes);
            }
            List<String> notes = new ArrayList<>(first.notes);
            if (first.problems.isEmpty()) {
                if (!options.readOnly() && first.journalTransactions > 0) {
                    progress.accept("Replaying the journal");
                    replayJournal(device, pool, first);
                    notes.add("replayed the journal");
                } else if (first.journalTransactions > 0) {
                    notes.add("journal not replayed (read-only check)");
                }
                return new FsckReport(CLEAN, List.of(), List.of(), notes, first.summary());
            }
            if (options.readOnly() || first.unknownRoFeatures) {
                return new FsckReport(UNCORRECTED, first.problems, List.of(), notes, first.summary());
            }
            if (first.problems.stream().noneMatch(Problem::repairable)) {
                if (first.journalTransactions > 0 && !first.journalDamaged) {
                    progress.accept("Replaying the journal");
                    replayJournal(device, pool, first);
                    notes.add("replayed the journal");
                }
                return new FsckReport(UNCORRECTED, first.problems, List.of(), notes, first.summary());
            }
            progress.accept("Repairing " + first.problems.stream().filter(Problem::repairable).count() + " of "
                    + first.problems.size() + " problems");
            repair(device, pool, first, progress);
            progress.accept("Re-checking after repair");
            Checker second = check(device, pool, line -> { });
            if (second.fatal != null) {
                return operationalError("re-check after repair failed: " + second.fatal, first.problems, notes);
            }
            int exit = second.problems.isEmpty() ? CORRECTED : UNCORRECTED;
            return new FsckReport(exit, first.problems, second.problems, notes, second.summary());
        } catch (IOException | RuntimeException e) {
            return operationalError("fsck failed: " + e, List.of(), List.of());
        }
    }

    private static Checker check(BlockDevice device, AlignedBufferPool pool, Consumer<String> progress)
            throws IOException {
        try (OverlayDevice overlay = new OverlayDevice(device)) {
            Checker c = new Checker(overlay, pool, progress);
            try {
                c.run();
            } catch (Checker.FatalException e) {
                c.fatal = e.getMessage();
            }
            return c;
        }
    }

    private static void replayJournal(BlockDevice device, AlignedBufferPool pool, Checker checked) throws IOException {
        try (MetaCache cache = new MetaCache(device, pool, 64)) {
            Journal.open(device, checked.superblock.layout().journalStart(),
                    checked.superblock.layout().journalBlocks(), cache, JournalOptions.DEFAULTS).close();
        }
    }

    private static void repair(BlockDevice device, AlignedBufferPool pool, Checker checked, Consumer<String> progress)
            throws IOException {
        List<Problem> problems = checked.problems;
        if (!checked.journalDamaged) {
            replayJournal(device, pool, checked);
        }
        for (Problem p : problems) {
            if (p.preMountFix() != null) {
                try {
                    p.preMountFix().apply(device, pool);
                    p.setStatus(Problem.Status.REPAIRED, null);
                } catch (IOException | RuntimeException e) {
                    p.setStatus(Problem.Status.REPAIR_FAILED, e.toString());
                }
            }
        }
        MetaStore meta;
        try {
            meta = MetaStore.mount(device, pool, JournalOptions.DEFAULTS, false);
        } catch (IOException | RuntimeException e) {
            for (Problem p : problems) {
                if (p.txnFix() != null) {
                    p.setStatus(Problem.Status.REPAIR_FAILED, "cannot mount for repair: " + e.getMessage());
                }
            }
            return;
        }
        try (meta) {
            RepairContext ctx = new RepairContext(meta);
            String abortedBy = null;
            for (Problem.Stage stage : Problem.Stage.values()) {
                for (Problem p : problems) {
                    if (p.txnFix() == null || p.stage() != stage) {
                        continue;
                    }
                    if (abortedBy != null) {
                        p.setStatus(Problem.Status.REPAIR_FAILED, "not tried: an earlier repair failed: " + abortedBy);
                        continue;
                    }
                    abortedBy = applyOne(meta, ctx, p);
                }
            }
            if (abortedBy == null) {
                meta.commit();
            }
        }
        progress.accept("Repairs done");
    }

    /** Runs one fix in a transaction of its own; returns why the journal had to abort, or null. */
    private static String applyOne(MetaStore meta, RepairContext ctx, Problem p) throws IOException {
        MetaOp op = meta.begin(REPAIR_CREDITS);
        try {
            p.txnFix().apply(ctx, op);
        } catch (IOException | RuntimeException e) {
            p.setStatus(Problem.Status.REPAIR_FAILED, e.toString());
            if (op.modified()) {
                meta.journal().abort(e);
                op.closeAborted();
                return e.toString();
            }
            op.close();
            return null;
        }
        op.close();
        p.setStatus(Problem.Status.REPAIRED, null);
        return null;
    }

    private static FsckReport operationalError(String message, List<Problem> problems, List<String> notes) {
        return new FsckReport(OPERATIONAL_ERROR, problems, List.of(), notes, message);
    }
}
