package io.coherentfs.cli;

import picocli.CommandLine.Command;

/** The top-level command; one subcommand per capability. */
@Command(
        name = "coherentfs",
        mixinStandardHelpOptions = true,
        versionProvider = Version.class,
        description = "A FUSE filesystem with its own page cache and extent tree over O_DIRECT storage.",
        subcommands = {MkfsCommand.class, FsckCommand.class, MountCommand.class, StatsCommand.class,
                DeviceCheckCommand.class, DeviceBenchCommand.class, MetaBenchCommand.class, IoBenchCommand.class,
                AotTrainCommand.class,
                picocli.CommandLine.HelpCommand.class})
public final class CoherentfsCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "a subcommand is required");
    }
}
