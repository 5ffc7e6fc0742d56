package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.fuse.ImageLock;
import io.coherentfs.fuse.Mounts;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * An image under target/it-mounts and its mountpoint, formatted, mounted and unmounted through
 * the real CLI. Waiting is always polling a condition with a deadline: the mount in
 * /proc/self/mountinfo, the daemon's image lock.
 */
final class MountedImage implements AutoCloseable {
    static final Path DIR = Path.of("target", "it-mounts").toAbsolutePath();
    static final long DEADLINE_NANOS = TimeUnit.SECONDS.toNanos(60);

    final Path image;
    final Path mountpoint;
    final Path log;

    private MountedImage(Path image, Path mountpoint, Path log) {
        this.image = image;
        this.mountpoint = mountpoint;
        this.log = log;
    }

    /** A fresh image of {@code size} formatted with coherentfs mkfs, and an empty mountpoint. */
    static MountedImage create(String name, String size) throws Exception {
        Files.createDirectories(DIR);
        Path image = DIR.resolve(name + ".img");
        Path mp = DIR.resolve(name + ".mnt");
        if (Mounts.at(mp).isPresent()) {
            run("umount", mp.toString()); // left over from an aborted earlier run
        }
        Files.deleteIfExists(image);
        Files.createDirectories(mp);
        MountedImage m = new MountedImage(image, mp, DIR.resolve(name + ".log"));
        m.awaitUnlocked();
        Launcher.Outcome r = Launcher.run("mkfs", "--size", size, image.toString());
        assertThat(r.exitCode()).as(r.stderr()).isZero();
        return m;
    }

    /**
     * A fresh image for the shared mount of {@code testClass}: named {@code base}, or as its
     * {@link MountWith} says, and mounted with that annotation's options.
     */
    static MountedImage forTestClass(Class<?> testClass, String base, String size) throws Exception {
        MountWith w = testClass.getAnnotation(MountWith.class);
        return create(w == null ? base : w.image(), size).mount(w == null ? new String[0] : w.options());
    }

    /** coherentfs mount IMAGE MOUNTPOINT -o log=...[,extra]; asserts it is mounted when it returns. */
    MountedImage mount(String... extraOptions) throws Exception {
        List<String> o = new ArrayList<>(List.of("log=" + log));
        o.addAll(List.of(extraOptions));
        Launcher.Outcome r = Launcher.run("mount", image.toString(), mountpoint.toString(), "-o", String.join(",", o));
        assertThat(r.exitCode()).as("mount: %s%s", r.stderr(), logText()).isZero();
        assertThat(isMounted()).as("mounted when coherentfs mount returned").isTrue();
        return this;
    }

    boolean isMounted() throws IOException {
        return Mounts.at(mountpoint).map(e -> e.fstype().equals("fuse.coherentfs")).orElse(false);
    }

    /** umount, then wait until the daemon has closed the engine and dropped its lock. */
    void unmount() throws Exception {
        Outcome u = run("umount", mountpoint.toString());
        assertThat(u.exit()).as(u.output()).isZero();
        awaitUnlocked();
    }

    void awaitUnlocked() throws Exception {
        await(() -> {
            try {
                return !Files.exists(image) || !ImageLock.isLocked(image);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }, "the daemon of " + image + " to exit");
    }

    /** The daemon's pid (it holds the image lock). */
    long daemonPid() {
        Long pid = ImageLock.holder(image);
        assertThat(pid).as("a daemon holds the lock on %s", image).isNotNull();
        return pid;
    }

    String logText() {
        try {
            return Files.exists(log) ? "\n--- daemon log ---\n" + Files.readString(log) : "";
        } catch (IOException e) {
            return "";
        }
    }

    /** For a mount shared by a test class: it must still be mounted; unmount, then fsck -n must be clean. */
    void unmountAndCheckClean() throws Exception {
        boolean mounted = isMounted();
        close();
        assertThat(mounted).as("still mounted after the tests" + logText()).isTrue();
        Launcher.Outcome r = fsck();
        assertThat(r.exitCode()).as("fsck -n after unmount: %s%s", r.stdout(), r.stderr()).isZero();
    }

    Launcher.Outcome fsck() throws Exception {
        return Launcher.run("fsck", "-n", image.toString());
    }

    static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + DEADLINE_NANOS;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(20); // polling another process's state; the deadline bounds it
        }
    }

    record Outcome(int exit, String output) {}

    /** Runs a command, stdout and stderr together. */
    static Outcome run(String... cmd) throws IOException, InterruptedException {
        return run(null, cmd);
    }

    static Outcome run(Path cwd, String... cmd) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        if (cwd != null) {
            pb.directory(cwd.toFile());
        }
        Process p = pb.start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", cmd) + " did not finish");
        }
        return new Outcome(p.exitValue(), out);
    }

    @Override
    public void close() throws Exception {
        if (isMounted()) {
            unmount();
        }
    }
}
