package io.coherentfs.core.fsck;

import java.util.ArrayList;
import java.util.List;

/**
 * What one fsck run found and did.
 *
 * @param exitCode  like e2fsck: {@link Fsck#CLEAN}, {@link Fsck#CORRECTED}, {@link Fsck#UNCORRECTED}
 *                  or {@link Fsck#OPERATIONAL_ERROR}
 * @param problems  every problem the check found, each with what became of it
 * @param remaining problems a re-check found after repairing (empty when the repairs worked)
 * @param notes     facts worth knowing that are not errors (journal replayed, unclean unmount)
 * @param summary   one line of counts, or the operational error
 */
public record FsckReport(int exitCode, List<Problem> problems, List<Problem> remaining, List<String> notes,
        String summary) {

    public FsckReport {
        problems = List.copyOf(problems);
        remaining = List.copyOf(remaining);
        notes = List.copyOf(notes);
    }

    public boolean clean() {
        return exitCode == Fsck.CLEAN;
    }

    /** The report as printed by {@code coherentfs fsck}. */
    public List<String> lines() {
        List<String> out = new ArrayList<>();
        for (String n : notes) {
            out.add("note: " + n);
        }
        for (Problem p : problems) {
            out.add(p.toString());
        }
        if (!remaining.isEmpty()) {
            out.add("after repair, a re-check still finds:");
            for (Problem p : remaining) {
                out.add("  [" + p.pass() + "] " + p.message());
            }
        }
        out.add(summary);
        out.add(switch (exitCode) {
            case Fsck.CLEAN -> "clean (exit 0)";
            case Fsck.CORRECTED -> "errors corrected (exit 1)";
            case Fsck.UNCORRECTED -> "ERRORS LEFT UNCORRECTED (exit 4)";
            default -> "fsck could not check the filesystem (exit " + exitCode + ")";
        });
        return out;
    }

    @Override
    public String toString() {
        return String.join(System.lineSeparator(), lines());
    }
}
