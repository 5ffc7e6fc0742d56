package io.coherentfs.cli;

import picocli.CommandLine;

/** Entry point of the {@code coherentfs} command (bin/coherentfs runs this). */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        int status = run(args);
        DaemonStatus.report("exit " + status); // when bin/coherentfs waits on a status pipe
        System.exit(status);
    }

    /** Runs the command line and returns the exit status, without exiting (for tests). */
    public static int run(String... args) {
        args = mountFuseForm(args);
        CommandLine cli = CoherentfsCommand.commandLine(args);
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            // One clear line for the user; the stack trace only on request.
            commandLine.getErr().println("coherentfs: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
            if (Boolean.getBoolean("coherentfs.debug")) {
                e.printStackTrace(commandLine.getErr());
            }
            return 1;
        });
        return cli.execute(args);
    }

    /**
     * mount.fuse runs {@code coherentfs IMAGE DIR -o OPTIONS}: a first argument that is neither a
     * subcommand nor an option, followed by a second positional argument, means {@code mount}.
     */
    static String[] mountFuseForm(String[] args) {
        if (args.length >= 2 && !args[0].startsWith("-") && !args[1].startsWith("-")
                && !CoherentfsCommand.SUBCOMMANDS.containsKey(args[0])) {
            String[] out = new String[args.length + 1];
            out[0] = "mount";
            System.arraycopy(args, 0, out, 1, args.length);
            return out;
        }
        return args;
    }
}
