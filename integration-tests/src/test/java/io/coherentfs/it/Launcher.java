package io.coherentfs.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the real bin/coherentfs launcher, as a user would, and captures what it says. */
final class Launcher {
    /** The repository root (integration-tests' parent). */
    static final Path ROOT = Path.of("").toAbsolutePath().getParent();
    static final Path COMMAND = ROOT.resolve("bin/coherentfs");

    record Outcome(int exitCode, String stdout, String stderr) {}

    private Launcher() {}

    static Outcome run(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(COMMAND.toString());
        cmd.addAll(List.of(args));
        Path err = Files.createTempFile("coherentfs-stderr", ".txt");
        try {
            Process p = new ProcessBuilder(cmd).redirectError(err.toFile()).start();
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("coherentfs " + String.join(" ", args) + " did not finish");
            }
            return new Outcome(p.exitValue(), out, Files.readString(err));
        } finally {
            Files.deleteIfExists(err);
        }
    }
}
