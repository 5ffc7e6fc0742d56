package io.coherentfs.it;

import static org.assertj.core.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs the xfstests-style shell suite ({@code integration-tests/shell/check -g auto}) against
 * an image and a mountpoint under {@code target/shell}, with the repository's own
 * {@code bin/coherentfs}. The suite's output is printed as it runs; the test fails with the
 * suite's summary and the diff of every failing test when {@code check} exits non-zero, and
 * also when a test did not run because a command it needs is missing (scripts/install-deps.sh
 * installs them all, so that is a broken machine, not a reason to skip).
 *
 * <p>{@code -Dcoherentfs.shell.mountOptions=transport=kernel} runs it with extra mount options
 * (the suite's MOUNT_OPTIONS), e.g. on the /dev/fuse transport.
 */
class ShellSuiteTest {
    static final Path SHELL = Launcher.ROOT.resolve("integration-tests").resolve("shell");
    static final Path DIR = Path.of("target", "shell").toAbsolutePath();
    static final long TIMEOUT_MINUTES = 30;

    @Test
    void shellSuiteGroupAutoPasses() throws Exception {
        Object uid = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        if (!Integer.valueOf(0).equals(uid)) {
            fail("the shell suite mounts coherentfs through FUSE and needs root (uid %s): run it as root, as scripts/test.sh does", uid);
        }
        if (!Files.exists(Path.of("/dev/fuse"))) {
            fail("/dev/fuse is missing: the shell suite needs FUSE (modprobe fuse; in a container pass --device /dev/fuse)");
        }
        Files.createDirectories(DIR.resolve("mnt"));
        Path config = DIR.resolve("local.config");
        Files.writeString(config, String.join("\n",
                "# written by ShellSuiteTest",
                "COHERENTFS=" + Launcher.COMMAND,
                "IMAGE=" + DIR.resolve("test.img"),
                "IMAGE_SIZE=512m",
                "TEST_DIR=" + DIR.resolve("mnt"),
                "SCRATCH_IMAGE=" + DIR.resolve("scratch.img"),
                "RESULT_BASE=" + DIR.resolve("results"),
                "MOUNT_OPTIONS=" + System.getProperty("coherentfs.shell.mountOptions", ""),
                ""));

        ProcessBuilder pb = new ProcessBuilder("bash", SHELL.resolve("check").toString(), "-g", "auto")
                .directory(SHELL.toFile())
                .redirectErrorStream(true);
        pb.environment().put("COHERENTFS_SHELL_CONFIG", config.toString());
        Process p = pb.start();
        p.getOutputStream().close();
        List<String> lines = new ArrayList<>();
        Thread reader = Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                    PrintWriter log = new PrintWriter(Files.newBufferedWriter(DIR.resolve("check.out")))) {
                for (String line; (line = r.readLine()) != null; ) {
                    System.out.println("[shell] " + line);
                    log.println(line);
                    log.flush();
                    synchronized (lines) {
                        lines.add(line);
                    }
                }
            } catch (IOException e) {
                System.out.println("[shell] (output lost: " + e + ")");
            }
        });
        if (!p.waitFor(TIMEOUT_MINUTES, TimeUnit.MINUTES)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail("the shell suite did not finish in %d minutes; see %s and %s", TIMEOUT_MINUTES, DIR.resolve("check.out"),
                    DIR.resolve("results"));
        }
        reader.join(TimeUnit.MINUTES.toMillis(1));
        String output;
        List<String> missingCommands = new ArrayList<>();
        synchronized (lines) {
            output = String.join("\n", lines);
            for (String l : lines) {
                if (l.contains("[notrun] missing command")) {
                    missingCommands.add(l);
                }
            }
        }
        int exit = p.exitValue();
        if (exit != 0) {
            int summary = output.indexOf("\nRan: ");
            fail("shell/check -g auto exited %d%n%s%n(results: %s)", exit,
                    summary >= 0 ? output.substring(summary + 1) : output, DIR.resolve("results"));
        }
        if (!missingCommands.isEmpty()) {
            fail("shell tests did not run for want of a command (scripts/install-deps.sh installs them):%n%s",
                    String.join("\n", missingCommands));
        }
    }
}
