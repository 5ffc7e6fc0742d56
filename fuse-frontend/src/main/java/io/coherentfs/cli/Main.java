package io.coherentfs.cli;

import picocli.CommandLine;

/** Entry point of the {@code coherentfs} command (bin/coherentfs runs this). */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit status, without exiting (for tests). */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new CoherentfsCommand());
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
}
