package io.coherentfs.cli;

import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs fsck [-n] [-y] [-f] IMAGE|DEVICE}: checks a coherentfs and repairs what is
 * safe to repair ({@link Fsck} says what and how). Progress goes to stderr, the report to stdout,
 * and the exit status is e2fsck's: 0 clean, 1 errors corrected, 4 errors left uncorrected,
 * 8 operational error, 16 usage error. Never asks: repairing is the default, {@code -n} only
 * checks. Run it on an unmounted filesystem only.
 */
@Command(name = "fsck", mixinStandardHelpOptions = true,
        description = "Check a coherentfs and repair what is safe to repair (exit: 0 clean, 1 corrected, "
                + "4 errors left, 8 operational error, 16 usage error).")
public final class FsckCommand implements Callable<Integer> {
    static final int USAGE_ERROR = 16;

    @Parameters(paramLabel = "IMAGE|DEVICE", description = "The image file or block device to check (not mounted).")
    Path target;

    @Option(names = "-n", description = "Check only: open the device read-only and change nothing "
            + "(a journal to replay is reported and replayed only in memory).")
    boolean checkOnly;

    @Option(names = "-y", description = "Repair every problem that has a safe repair (the default; never asks).")
    boolean yes;

    @Option(names = "-f", description = "Force a check even if the filesystem looks clean "
            + "(accepted for e2fsck compatibility: coherentfs fsck always checks everything).")
    boolean force;

    @Option(names = {"-q", "--quiet"}, description = "No progress lines on stderr.")
    boolean quiet;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (checkOnly && yes) {
            err.println("coherentfs fsck: -n and -y exclude each other");
            err.flush();
            return USAGE_ERROR;
        }
        Fsck.Options options = new Fsck.Options(checkOnly, line -> {
            if (!quiet) {
                err.println(line);
                err.flush();
            }
        });
        out.println("coherentfs fsck " + target + (checkOnly ? " (read-only check)" : ""));
        FsckReport report = Fsck.run(target, options);
        for (String line : report.lines()) {
            out.println(line);
        }
        out.flush();
        return report.exitCode();
    }
}
