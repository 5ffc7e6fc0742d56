package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.exerciser.Exerciser;
import java.io.File;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * The coherence exerciser ({@link Exerciser}) against a real mount made by {@code coherentfs
 * mount} on a fresh image: at least 200,000 operations in all ({@code -Dcoherentfs.exerciser.ops=N}
 * overrides), split over a few exerciser processes on their own files at once, one with a fixed
 * seed and the others with a seed drawn for this run (printed; {@code
 * -Dcoherentfs.exerciser.seed=S} fixes it). Any mismatch fails the test with the exerciser's
 * report (seed, operation, the last operations, the differing range). Then the image is unmounted
 * and {@code coherentfs fsck -n} must find it clean.
 *
 * <p>That the checking can fail is shown by a self-test: the exerciser's shadow corrupted on
 * purpose must be reported as a mismatch. There is no negative run on an {@code unsafe_no_*}
 * mount: with every coherence mechanism off (each alone, M2+M3, and all six at once) the
 * exerciser still finds no stale data, its racing batches included: what reaches the engine
 * through FUSE is serialized and the kernel's page cache, in front, hides the engine's races
 * (the mechanisms have their own deterministic race tests in fs-core).
 *
 * <p>Each exerciser is a child JVM: a mapped page touched past end of file would raise SIGBUS,
 * which must not take the test JVM with it.
 */
class ExerciserTest {
    static final long FIXED_SEED = 20_261_122L;
    static MountedImage fs;

    @BeforeAll
    static void mount(TestInfo info) throws Exception {
        fs = MountedImage.forTestClass(info.getTestClass().orElseThrow(), "exerciser", "512m");
    }

    @AfterAll
    static void unmountAndCheck() throws Exception {
        if (fs != null) {
            fs.unmountAndCheckClean();
        }
    }

    @Test
    void randomizedOperationsMatchTheShadow() throws Exception {
        long total = Long.getLong("coherentfs.exerciser.ops", 200_000L);
        int processes = Integer.getInteger("coherentfs.exerciser.processes", 2);
        long seed = Long.getLong("coherentfs.exerciser.seed", new SplittableRandom().nextLong() >>> 1);
        System.out.printf("ExerciserTest: %d ops in %d processes; seeds %d (fixed) and %d.. (this run)%n", total,
                processes, FIXED_SEED, seed);
        List<Run> runs = new ArrayList<>();
        for (int i = 0; i < processes; i++) {
            long s = i == 0 ? FIXED_SEED : seed + i - 1;
            runs.add(Run.start("run" + i, fs.mountpoint.resolve("exerciser-" + i + ".dat"), total / processes,
                    "--seed", Long.toString(s)));
        }
        for (Run r : runs) {
            r.await();
        }
        for (Run r : runs) {
            assertThat(r.exit).as("exerciser %s (exit 1 mismatch, 3 error):%n%s%s", r.name, r.output(), fs.logText())
                    .isEqualTo(Exerciser.EXIT_OK);
            System.out.println(r.name + ": " + r.lastLine());
        }
    }

    @Test
    void aCorruptedShadowIsReported() throws Exception {
        Run r = Run.start("self-test", fs.mountpoint.resolve("self-test.dat"), 3000, "--seed", "5",
                "--self-test-corrupt-at", "2000");
        r.await();
        String out = r.output();
        assertThat(r.exit).as(out).isEqualTo(Exerciser.EXIT_MISMATCH);
        assertThat(out).contains("MISMATCH", "seed 5, op 2000", "replay: scripts/exerciser.sh");
    }

    /** One exerciser child JVM, its output in target/it-mounts/exerciser-NAME.out. */
    static final class Run {
        final String name;
        final Process process;
        final Path log;
        int exit = -1;

        private Run(String name, Process process, Path log) {
            this.name = name;
            this.process = process;
            this.log = log;
        }

        static Run start(String name, Path file, long ops, String... more) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED",
                    "-cp", classPath(),
                    Exerciser.class.getName(),
                    file.toString(), "--ops", Long.toString(ops)));
            cmd.addAll(List.of(more));
            Path log = MountedImage.DIR.resolve("exerciser-" + name + ".out");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            p.getOutputStream().close();
            return new Run(name, p, log);
        }

        void await() throws Exception {
            if (!process.waitFor(15, TimeUnit.MINUTES)) {
                process.destroyForcibly();
                throw new AssertionError("exerciser " + name + " did not finish:\n" + output());
            }
            exit = process.exitValue();
        }

        String output() throws Exception {
            return Files.readString(log);
        }

        String lastLine() throws Exception {
            List<String> lines = Files.readAllLines(log);
            return lines.stream().filter(l -> l.contains("PASS")).findFirst().orElse(lines.getLast());
        }

        /** The exerciser's classes and blockdev's (all it uses), wherever the build put them. */
        private static String classPath() throws URISyntaxException {
            return String.join(File.pathSeparator, location(Exerciser.class), location(LinuxSyscalls.class));
        }

        private static String location(Class<?> c) throws URISyntaxException {
            return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        }
    }
}
