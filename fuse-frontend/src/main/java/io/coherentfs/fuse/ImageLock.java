package io.coherentfs.fuse;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;

/**
 * The exclusive lock a mount holds on its image or device for the daemon's whole life: an
 * {@code flock(LOCK_EX)} on a descriptor of its own (the engine's O_DIRECT descriptor is a
 * different open file description, which flock does not care about). The kernel drops it when
 * the daemon exits, however it exits, so a crashed daemon never leaves a stale lock behind.
 *
 * <p>{@link #acquire} takes a wait: zero refuses at once (today's behaviour); issue 7's "a new
 * mount waits for the previous daemon" passes a positive wait and nothing else changes.
 */
public final class ImageLock implements AutoCloseable {
    private final int fd;
    private final Path path;

    private ImageLock(int fd, Path path) {
        this.fd = fd;
        this.path = path;
    }

    /**
     * Locks {@code image}, waiting up to {@code wait} for another holder to go.
     *
     * @throws ErrnoException EBUSY with a message naming the holder's pid when it stays locked
     */
    public static ImageLock acquire(Path image, Duration wait) throws IOException {
        int fd = LinuxSyscalls.open(image.toString(), LinuxSyscalls.O_RDONLY | LinuxSyscalls.O_CLOEXEC, 0);
        long deadline = System.nanoTime() + wait.toNanos();
        try {
            while (true) {
                try {
                    LinuxSyscalls.flock(fd, LinuxSyscalls.LOCK_EX | LinuxSyscalls.LOCK_NB);
                    return new ImageLock(fd, image);
                } catch (ErrnoException e) {
                    if (e.errno() != Errno.EAGAIN.code()) {
                        throw e;
                    }
                    if (System.nanoTime() - deadline >= 0) {
                        Long pid = holder(image);
                        throw new MountException(image + " is already mounted"
                                + (pid == null ? "" : " (by coherentfs pid " + pid + ")")
                                + "; unmount it first");
                    }
                    Thread.sleep(50); // polling another process's lifetime: there is no event to wait on
                }
            }
        } catch (IOException | RuntimeException e) {
            LinuxSyscalls.close(fd);
            throw e;
        } catch (InterruptedException e) {
            LinuxSyscalls.close(fd);
            Thread.currentThread().interrupt();
            throw new MountException("interrupted while waiting for the lock on " + image);
        }
    }

    /** True when some process holds the lock on {@code image} (for fsck and tests). */
    public static boolean isLocked(Path image) throws IOException {
        int fd = LinuxSyscalls.open(image.toString(), LinuxSyscalls.O_RDONLY | LinuxSyscalls.O_CLOEXEC, 0);
        try {
            LinuxSyscalls.flock(fd, LinuxSyscalls.LOCK_EX | LinuxSyscalls.LOCK_NB);
            return false;
        } catch (ErrnoException e) {
            if (e.errno() == Errno.EAGAIN.code()) {
                return true;
            }
            throw e;
        } finally {
            LinuxSyscalls.close(fd);
        }
    }

    /** The pid holding an flock on {@code image}, from /proc/locks; null if none is found. */
    public static Long holder(Path image) {
        try {
            long ino = (Long) Files.getAttribute(image, "unix:ino");
            long dev = (Long) Files.getAttribute(image, "unix:dev");
            long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
            long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
            String id = String.format(Locale.ROOT, "%02x:%02x:%d", major, minor, ino);
            for (String line : Files.readAllLines(Path.of("/proc/locks"))) {
                String[] f = line.trim().split("\\s+");
                // "1: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF"
                if (f.length >= 6 && f[1].equals("FLOCK") && f[5].equals(id)) {
                    return Long.parseLong(f[4]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // best effort: the message just lacks the pid
        }
        return null;
    }

    public Path path() {
        return path;
    }

    @Override
    public void close() throws IOException {
        LinuxSyscalls.close(fd); // closing the last descriptor drops the flock
    }
}
