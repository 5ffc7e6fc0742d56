package io.coherentfs.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The top-level command; one subcommand per capability.
 *
 * <p>The subcommands are added by {@link #commandLine}, not declared in the annotation: picocli
 * builds the model of every declared subcommand by reflection at start, a good part of a
 * command's start-up time, and a mount starts two JVMs. A command line naming a subcommand gets
 * that one only; anything else (help, an unknown word) gets them all.
 */
@Command(
        name = "coherentfs",
        mixinStandardHelpOptions = true,
        versionProvider = Version.class,
        description = "A FUSE filesystem with its own page cache and extent tree over O_DIRECT storage.")
public final class CoherentfsCommand implements Runnable {
    /** Every subcommand by name, in the order help lists them. */
    static final Map<String, Supplier<Object>> SUBCOMMANDS = new LinkedHashMap<>();

    static {
        SUBCOMMANDS.put("mkfs", MkfsCommand::new);
        SUBCOMMANDS.put("fsck", FsckCommand::new);
        SUBCOMMANDS.put("mount", MountCommand::new);
        SUBCOMMANDS.put("stats", StatsCommand::new);
        SUBCOMMANDS.put("device-check", DeviceCheckCommand::new);
        SUBCOMMANDS.put("device-bench", DeviceBenchCommand::new);
        SUBCOMMANDS.put("meta-bench", MetaBenchCommand::new);
        SUBCOMMANDS.put("io-bench", IoBenchCommand::new);
        SUBCOMMANDS.put("help", CommandLine.HelpCommand::new);
    }

    /** The command line for {@code args}: with only the subcommand {@code args[0]} names, if it names one. */
    static CommandLine commandLine(String... args) {
        CommandLine cli = new CommandLine(new CoherentfsCommand());
        Supplier<Object> only = args.length > 0 && !args[0].equals("help") ? SUBCOMMANDS.get(args[0]) : null;
        if (only != null) {
            cli.addSubcommand(args[0], only.get());
        } else {
            SUBCOMMANDS.forEach((name, make) -> cli.addSubcommand(name, make.get()));
        }
        return cli;
    }

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "a subcommand is required");
    }
}
