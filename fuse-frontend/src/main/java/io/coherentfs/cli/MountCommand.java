package io.coherentfs.cli;

import io.coherentfs.fuse.Daemon;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.fuse.MetricsEndpoints;
import io.coherentfs.fuse.MountException;
import io.coherentfs.fuse.MountOptions;
import io.coherentfs.fuse.Mounts;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs mount IMAGE|DEVICE MOUNTPOINT [-o OPTIONS] [-f]}; also what mount.fuse runs
 * ({@code coherentfs IMAGE DIR -o OPTIONS}, see {@link Main}).
 *
 * <p>Without {@code -f} it daemonizes as FUSE filesystems do. The JVM cannot fork: bin/coherentfs
 * starts it in a session of its own and this JVM becomes the daemon, reporting through a status
 * pipe ({@link #becomeDaemon}, {@link DaemonStatus}); run any other way, it starts itself again
 * in the foreground mode as a detached child ({@code setsid}, stdin from /dev/null, stdout and
 * stderr appended to the log file) and returns 0 once the mount shows up in
 * /proc/self/mountinfo, or 1 with the child's own error line when the child exits first.
 * Exit status: 0 mounted (or, with -f, unmounted cleanly), 1 refused or failed, 2 usage error
 * (an unknown option is named).
 */
@Command(name = "mount", mixinStandardHelpOptions = true,
        description = "Mount a coherentfs image or device on a directory (daemonizes unless -f).")
public final class MountCommand implements Callable<Integer> {
    /** How long the parent waits for the daemon's mount to appear before giving up. */
    static final long MOUNT_DEADLINE_NANOS = 120_000_000_000L;

    @Parameters(index = "0", paramLabel = "IMAGE|DEVICE", description = "The image file or block device.")
    Path image;

    @Parameters(index = "1", paramLabel = "MOUNTPOINT", description = "An empty directory.")
    Path mountpoint;

    @Option(names = "-o", paramLabel = "OPTIONS", description = "Comma-separated mount options: ro, rw, "
            + "cache_size=SIZE, metrics=HOST:PORT (loopback), log=FILE, noatime|relatime|strictatime, "
            + "fsname=, subtype=, nosuid, nodev, noexec, allow_other, nonempty, unsafe_no_* (tests only), "
            + "transport=kernel|libfuse (who speaks FUSE: coherentfs on /dev/fuse, the default, or libfuse 2), threads=N, "
            + "and the options mount(8) and fstab pass along.")
    List<String> options = new ArrayList<>();

    @Option(names = "-f", description = "Stay in the foreground (log to stderr) until unmounted.")
    boolean foreground;

    @Option(names = "--daemon-child", hidden = true)
    boolean daemonChild;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException, InterruptedException {
        PrintWriter err = spec.commandLine().getErr();
        MountOptions mo;
        try {
            mo = MountOptions.parse(options);
        } catch (IllegalArgumentException e) {
            err.println("coherentfs: " + e.getMessage());
            err.flush();
            return 2;
        }
        if (mo.remount()) {
            return remount(mo, err);
        }
        if (foreground) {
            new Daemon(image, mountpoint, mo).run();
            return 0;
        }
        if (DaemonStatus.expected()) {
            return becomeDaemon(mo);
        }
        return daemonize(mo, err);
    }

    /**
     * bin/coherentfs started this JVM in a session of its own to be the daemon, and waits on a
     * status pipe ({@link DaemonStatus}). The checks that need no lock fail on the user's terminal
     * as usual; then our output goes to the log, a watcher reports {@code ok} once the mount shows
     * up in mountinfo, and a failure before that is reported through the pipe.
     */
    private int becomeDaemon(MountOptions mo) throws IOException {
        Path real = Daemon.checkMountpoint(mountpoint, mo);
        Daemon.checkImage(image);
        DaemonStatus.redirectOutput(logFile(mo));
        Thread.ofPlatform().daemon(true).name("mount-ready").start(() -> reportWhenMounted(real, mo));
        try {
            new Daemon(image, mountpoint, mo).run();
            return 0;
        } catch (IOException | RuntimeException e) {
            String line = "coherentfs: " + (e.getMessage() == null ? e.toString() : e.getMessage());
            System.err.println(line);
            if (Boolean.getBoolean("coherentfs.debug")) {
                e.printStackTrace();
            }
            DaemonStatus.report(line, "exit 1");
            return 1;
        }
    }

    private static void reportWhenMounted(Path real, MountOptions mo) {
        try {
            while (DaemonStatus.expected()) {
                if (mountedHere(real, mo)) {
                    DaemonStatus.report("ok");
                    return;
                }
                Thread.sleep(5); // waiting on the kernel's mount table: nothing to wake us
            }
        } catch (IOException e) {
            DaemonStatus.report("coherentfs: cannot read the mount table: " + e.getMessage(), "exit 1");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Whether our mount (fuse.SUBTYPE, or fuseblk.SUBTYPE on a block device) is on {@code real}. */
    private static boolean mountedHere(Path real, MountOptions mo) throws IOException {
        var at = Mounts.at(real);
        return at.isPresent() && (at.get().fstype().equals("fuse." + mo.subtype())
                || at.get().fstype().equals("fuseblk." + mo.subtype()));
    }

    private Path logFile(MountOptions mo) throws IOException {
        Path log = mo.logFile() != null ? mo.logFile() : Daemon.defaultLog(image);
        if (log.getParent() != null) {
            Files.createDirectories(log.getParent());
        }
        return log;
    }

    /**
     * {@code -o remount,...}: changes the live mount on MOUNTPOINT, never starting a daemon. The
     * kernel's flags change by mount(2) with MS_REMOUNT (FUSE syncs its own dirty pages to the
     * daemon and, going read-only, refuses while files are open for writing); the daemon hears of
     * it on its socket: going read-only after the kernel (so no write can follow), it writes back,
     * commits and marks the image clean; going read-write before the kernel (so no write can come
     * first), it makes the engine writable again.
     */
    private int remount(MountOptions mo, PrintWriter err) throws IOException {
        Path real = mountpoint.toRealPath();
        var at = Mounts.at(real);
        if (at.isEmpty() || !Mounts.isFuse(at.get())) {
            throw new MountException(real + " is not a coherentfs mount; nothing to remount");
        }
        if (!mo.readOnly()) {
            tellDaemon(real, "remount rw");
        }
        try {
            LinuxSyscalls.remount(real.toString(), mo.kernelFlags());
        } catch (ErrnoException e) {
            if (e.errno() == Errno.EBUSY.code() && mo.readOnly()) {
                throw new MountException("cannot remount " + real + " read-only: files on it are open for writing");
            }
            throw new MountException("cannot remount " + real + ": " + e.getMessage());
        }
        if (mo.readOnly()) {
            tellDaemon(real, "remount ro");
        }
        return 0;
    }

    private static void tellDaemon(Path mountpoint, String request) throws IOException {
        String answer = MetricsEndpoints.request(mountpoint, request).strip();
        if (!answer.equals("ok")) {
            throw new MountException(request + " of " + mountpoint + " failed: "
                    + answer.replaceFirst("^error: ", ""));
        }
    }

    private int daemonize(MountOptions mo, PrintWriter err) throws IOException, InterruptedException {
        Path real = Daemon.checkMountpoint(mountpoint, mo);
        Daemon.checkImage(image);
        Path log = logFile(mo);
        long logStart = Files.exists(log) ? Files.size(log) : 0;

        List<String> cmd = new ArrayList<>();
        if (Files.isExecutable(Path.of("/usr/bin/setsid")) || Files.isExecutable(Path.of("/bin/setsid"))) {
            cmd.add("setsid");
        }
        cmd.addAll(relaunch());
        cmd.addAll(List.of("mount", "-f", "--daemon-child", image.toAbsolutePath().toString(), real.toString()));
        if (!options.isEmpty()) {
            cmd.add("-o");
            cmd.add(String.join(",", options));
        }
        Process child = new ProcessBuilder(cmd)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectErrorStream(true)
                .start();
        long deadline = System.nanoTime() + MOUNT_DEADLINE_NANOS;
        while (true) {
            if (mountedHere(real, mo)) {
                return 0;
            }
            if (!child.isAlive()) {
                String line = lastErrorLine(log, logStart);
                err.println(line != null ? line
                        : "coherentfs: the mount daemon exited with status " + child.exitValue() + "; see " + log);
                err.flush();
                return 1;
            }
            if (System.nanoTime() - deadline > 0) {
                child.destroy();
                err.println("coherentfs: " + real + " was not mounted within "
                        + MOUNT_DEADLINE_NANOS / 1_000_000_000L + " s; see " + log);
                err.flush();
                return 1;
            }
            Thread.sleep(10); // waiting on another process: poll its mount with a deadline
        }
    }

    /** The last "coherentfs: ..." line the child wrote to the log after {@code from}. */
    static String lastErrorLine(Path log, long from) throws IOException {
        byte[] all = Files.readAllBytes(log);
        String tail = new String(all, (int) Math.min(from, all.length), (int) (all.length - Math.min(from, all.length)),
                StandardCharsets.UTF_8);
        String found = null;
        for (String line : tail.split("\n")) {
            if (line.startsWith("coherentfs: ")) {
                found = line.strip();
            }
        }
        return found;
    }

    /** The command that runs this program again: bin/coherentfs when it started us, else java itself. */
    static List<String> relaunch() {
        String launcher = System.getenv("COHERENTFS_LAUNCHER");
        if (launcher != null && Files.isExecutable(Path.of(launcher))) {
            return List.of(launcher);
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse(
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        return cmd;
    }
}
