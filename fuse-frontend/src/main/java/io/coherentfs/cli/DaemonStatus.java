package io.coherentfs.cli;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a mount daemon that bin/coherentfs started directly tells the launcher how the mount went.
 *
 * <p>The JVM cannot fork, and starting a second JVM as the daemon doubled the time a mount
 * takes. So bin/coherentfs starts the one JVM in a session of its own ({@code setsid -f}) with
 * a pipe as descriptor {@code $COHERENTFS_STATUS_FD}, and waits for the pipe to close. The JVM
 * writes lines to it, the last of which is {@code ok} (mounted; the daemon lives on) or
 * {@code exit N} (the command ended with status N); lines before that are messages for the
 * user's terminal, which the daemon no longer has once its output goes to the log.
 *
 * <p>Invariant: the report is written once; the descriptor is closed right after and never
 * touched again (its number may be reused by any file the JVM opens later). A
 * {@code COHERENTFS_STATUS_FD} that does not name a pipe is ignored.
 */
final class DaemonStatus {
    static final String ENV = "COHERENTFS_STATUS_FD";

    /** The status pipe's descriptor; -1 when there is none or the report was made. Guarded by the class. */
    private static int fd = pipeFrom(System.getenv(ENV));

    private DaemonStatus() {}

    private static int pipeFrom(String value) {
        if (value == null || !value.matches("[0-9]{1,4}")) {
            return -1;
        }
        int n = Integer.parseInt(value);
        try {
            String target = Files.readSymbolicLink(Path.of("/proc/self/fd/" + n)).toString();
            return target.startsWith("pipe:") ? n : -1;
        } catch (IOException | UnsupportedOperationException e) {
            return -1;
        }
    }

    /** Whether the launcher waits on a status pipe (so this JVM should become the daemon itself). */
    static synchronized boolean expected() {
        return fd >= 0;
    }

    /** Reports and closes the pipe; does nothing when there is none or it was closed already. */
    static synchronized void report(String... lines) {
        if (fd < 0) {
            return;
        }
        try (FileOutputStream out = new FileOutputStream("/proc/self/fd/" + fd)) {
            out.write((String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            // The launcher is gone (killed while waiting): nobody to tell.
        }
        try {
            LinuxSyscalls.close(fd);
        } catch (ErrnoException e) {
            // Already closed: nothing more to release.
        }
        fd = -1;
    }

    /**
     * Sends this JVM's standard output and error to {@code log} (appending), as a daemon's are:
     * from here on nothing reaches the user's terminal but what {@link #report} sends.
     */
    static void redirectOutput(Path log) throws ErrnoException {
        System.out.flush();
        System.err.flush();
        int logFd = LinuxSyscalls.open(log.toString(),
                LinuxSyscalls.O_WRONLY | LinuxSyscalls.O_APPEND | LinuxSyscalls.O_CREAT | LinuxSyscalls.O_CLOEXEC, 0644);
        try {
            LinuxSyscalls.dup2(logFd, 1);
            LinuxSyscalls.dup2(logFd, 2);
        } finally {
            LinuxSyscalls.close(logFd);
        }
    }
}
