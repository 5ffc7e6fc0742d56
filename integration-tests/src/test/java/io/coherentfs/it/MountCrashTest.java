package io.coherentfs.it;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Crash recovery through the real launcher: each round mounts one image (fresh in the first round,
 * reused after), runs a write/fsync workload on it from several threads (one file each: aligned
 * and unaligned buffered writes, O_DIRECT writes, extending writes, overwrites, truncate up and
 * down, hole punching, fsync and fdatasync; and one more thread replacing a file atomically by
 * write, fsync, rename and directory fsync, see {@link Replacer}), {@code kill -9}s the daemon after a random number of
 * operations, unmounts the dead mount, mounts again (the journal is replayed), checks every file,
 * unmounts, waits for the image lock and requires {@code coherentfs fsck -n} to exit 0.
 *
 * <p>What the check requires of each file, against a model the workload kept: it exists (it was
 * created, and its directory fsynced, before the workload began); its size lies between the
 * smallest and the largest size it had since its last acknowledged fsync (the operation in flight
 * at the kill included); and each byte holds what it held at the last acknowledged fsync, or what
 * a later (perhaps unacknowledged) write put at exactly that offset, or zero where a later
 * truncate, hole punch or extension may have left a hole. Written bytes encode (file, offset,
 * write generation) and are never zero, so a byte no write put at its offset is recognised as
 * such. An operation interrupted by the kill (its thread gets ENOTCONN or EIO once the daemon is
 * gone) counts as not acknowledged.
 *
 * <p>{@code -Dcoherentfs.crash.rounds=N} (default 20, on the default transport) and {@code -Dcoherentfs.crash.seed=S} (else
 * drawn and printed; round r uses S + r).
 */
class MountCrashTest {
    static final int WORKERS = 4;
    static final int MAX_FILE = 1 << 20;
    static final int MAX_WRITE = 128 * 1024;
    static final int BLOCK = 4096;

    @Test
    void killedDaemonKeepsFsyncedDataAndInventsNothing() throws Exception {
        int rounds = Integer.getInteger("coherentfs.crash.rounds", defaultRounds());
        long seed = Long.getLong("coherentfs.crash.seed", new SplittableRandom().nextLong() >>> 1);
        System.out.printf("MountCrashTest: %d rounds, seed %d (-Dcoherentfs.crash.seed=%d repeats the choices)%n",
                rounds, seed, seed);
        MountedImage fs = MountedImage.create("crash", "512m");
        try {
            for (int round = 0; round < rounds; round++) {
                round(fs, round, seed + round);
            }
        } finally {
            if (fs.isMounted()) {
                MountedImage.run("umount", "-l", fs.mountpoint.toString());
            }
        }
    }

    /**
     * The check itself can fail: against a model with 8 fsynced bytes, a file that lost one of
     * them, holds a byte no write put there, or is shorter than any size it had is rejected, and
     * the data of a later unacknowledged write is accepted. (On the host filesystem: no mount.)
     */
    @Test
    void theCheckRejectsLostFsyncedDataAndInventedBytes() throws Exception {
        Path f = Files.createDirectories(MountedImage.DIR.resolve("crash-check")).resolve("f");
        Files.deleteIfExists(f);
        Worker w = new Worker(1, f, new SplittableRandom(1));
        byte[] synced = new byte[8];
        for (int i = 0; i < synced.length; i++) {
            synced[i] = value(1, i, 1);
        }
        w.all.add(new Op(Kind.WRITE, 0, 8, 1, false));
        w.synced = synced;
        w.sizeLo = 8;
        w.sizeHi = 8;
        Files.write(f, synced);
        w.check("self-test");

        byte[] lost = synced.clone();
        lost[3] = 0;
        Files.write(f, lost);
        assertThatThrownBy(() -> w.check("self-test")).hasMessageContaining("fsynced data lost");

        byte[] invented = synced.clone();
        invented[5] ^= 0x11;
        Files.write(f, invented);
        assertThatThrownBy(() -> w.check("self-test")).hasMessageContaining("garbage");

        Files.write(f, java.util.Arrays.copyOf(synced, 4));
        assertThatThrownBy(() -> w.check("self-test")).hasMessageContaining("size 4 outside [8, 8]");

        Op later = new Op(Kind.WRITE, 2, 4, 2, false);
        w.all.add(later);
        w.since.add(later);
        byte[] partly = synced.clone();
        partly[2] = value(1, 2, 2);
        partly[4] = value(1, 4, 2);
        Files.write(f, partly);
        w.check("self-test"); // an unacknowledged write may survive in part
        Files.delete(f);
    }

    /** Rounds unless -Dcoherentfs.crash.rounds says otherwise. */
    int defaultRounds() {
        return 20;
    }

    /** Extra mount options of every mount this test makes (a subclass picks the FUSE transport). */
    String[] mountOptions() {
        return new String[0];
    }

    private void round(MountedImage fs, int round, long seed) throws Exception {
        SplittableRandom rnd = new SplittableRandom(seed);
        String where = "round " + round + " (seed " + seed + ")";
        long t0 = System.nanoTime();
        fs.mount(mountOptions());
        long tMounted = System.nanoTime();
        long pid = fs.daemonPid();
        Path previous = fs.mountpoint.resolve("r" + (round - 1));
        if (Files.exists(previous)) {
            deleteTree(previous); // frees blocks while the next workload allocates
        }
        Path dir = Files.createDirectory(fs.mountpoint.resolve("r" + round));
        List<Actor> workers = new ArrayList<>();
        for (int i = 0; i < WORKERS; i++) {
            workers.add(new Worker(round * 16 + i, dir.resolve("f" + i), rnd.split()));
        }
        workers.add(new Replacer(round * 16 + WORKERS, dir, rnd.split()));
        int dfd = LinuxSyscalls.open(dir.toString(), LinuxSyscalls.O_RDONLY, 0);
        LinuxSyscalls.fsync(dfd); // the new names are durable before the workload starts
        LinuxSyscalls.close(dfd);

        long tReady = System.nanoTime();
        long killAt = 1 + rnd.nextInt(rnd.nextInt(3) == 0 ? 60 : 500);
        AtomicLong completed = new AtomicLong();
        CountDownLatch trigger = new CountDownLatch(1);
        Killer killer = new Killer(pid, trigger);
        for (Actor w : workers) {
            w.start(completed, killAt, trigger, killer);
        }
        killer.start();
        killer.join(TimeUnit.MINUTES.toMillis(2));
        long tSignalled = System.nanoTime();
        assertThat(killer.isAlive()).as("%s: the kill did not happen", where).isFalse();
        for (Actor w : workers) {
            w.thread.join(TimeUnit.MINUTES.toMillis(1));
            assertThat(w.thread.isAlive()).as("%s: %s still running after the kill", where, w.thread.getName())
                    .isFalse();
        }
        for (Actor w : workers) {
            assertThat(w.failureBeforeKill).as("%s: %s failed before the kill", where, w.thread.getName()).isNull();
        }
        long tKilled = System.nanoTime();

        // The dead mount: unmount it, then mount again (journal replay).
        MountedImage.Outcome u = MountedImage.run("umount", fs.mountpoint.toString());
        if (u.exit() != 0) {
            u = MountedImage.run("umount", "-l", fs.mountpoint.toString());
        }
        assertThat(u.exit()).as("%s: umount of the dead mount: %s", where, u.output()).isZero();
        fs.awaitUnlocked();
        fs.mount(mountOptions());
        long tRemounted = System.nanoTime();
        try {
            for (Actor w : workers) {
                w.check(where);
            }
        } finally {
            fs.unmount();
        }
        long tChecked = System.nanoTime();
        Launcher.Outcome r = fs.fsck();
        assertThat(r.exitCode()).as("%s: fsck -n after recovery: %s%s%s", where, r.stdout(), r.stderr(), fs.logText())
                .isZero();
        long tEnd = System.nanoTime();
        System.out.printf("MountCrashTest: %s: daemon %d killed after %d ops (%s); all checked, fsck clean; "
                        + "seconds: mount %.1f, setup %.1f, workload to kill %.1f, daemon gone + threads ended %.1f, "
                        + "remount %.1f, check+unmount %.1f, fsck %.1f%n",
                where, pid, completed.get(), workers.stream().map(Actor::summary).toList(),
                (tMounted - t0) / 1e9, (tReady - tMounted) / 1e9, (tSignalled - tReady) / 1e9,
                (tKilled - tSignalled) / 1e9, (tRemounted - tKilled) / 1e9,
                (tChecked - tRemounted) / 1e9, (tEnd - tChecked) / 1e9);
    }

    private static void deleteTree(Path p) throws Exception {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }

    /** Sends SIGKILL to the daemon once the workers have completed the chosen number of operations. */
    static final class Killer extends Thread {
        final long pid;
        final CountDownLatch trigger;
        volatile boolean killed;

        Killer(long pid, CountDownLatch trigger) {
            super("crash-killer");
            this.pid = pid;
            this.trigger = trigger;
        }

        @Override
        public void run() {
            try {
                if (!trigger.await(2, TimeUnit.MINUTES)) {
                    return;
                }
            } catch (InterruptedException e) {
                return;
            }
            killed = true; // before the signal: every error a worker sees from here on may be the kill
            Optional<ProcessHandle> daemon = ProcessHandle.of(pid);
            daemon.ifPresent(ProcessHandle::destroyForcibly); // SIGKILL
            daemon.ifPresent(h -> h.onExit().join());
        }
    }

    /** What a worker did since its file's last acknowledged fsync; the check allows each. */
    enum Kind { WRITE, TRUNCATE, PUNCH }

    record Op(Kind kind, long off, long len, int gen, boolean direct) {
        @Override
        public String toString() {
            return switch (kind) {
                case WRITE -> (direct ? "dwrite" : "write") + " [" + off + ", +" + len + ") gen " + gen;
                case TRUNCATE -> "truncate " + off;
                case PUNCH -> "punch [" + off + ", +" + len + ")";
            };
        }
    }

    /** A workload thread: runs until the kill makes its next call fail, then is checked. */
    abstract static class Actor {
        final int id;
        final SplittableRandom rnd;
        final Thread thread;
        int ops;
        int syncs;
        Throwable failureBeforeKill;
        private AtomicLong completed;
        private long killAt;
        private CountDownLatch trigger;
        private Killer killer;

        Actor(int id, SplittableRandom rnd) {
            this.id = id;
            this.rnd = rnd;
            this.thread = new Thread(this::run, "crash-" + getClass().getSimpleName() + "-" + id);
        }

        void start(AtomicLong completed, long killAt, CountDownLatch trigger, Killer killer) {
            this.completed = completed;
            this.killAt = killAt;
            this.trigger = trigger;
            this.killer = killer;
            thread.start();
        }

        /** Counts one completed operation; the one that reaches the chosen count sets off the kill. */
        final void completedOne() {
            ops++;
            if (completed.incrementAndGet() == killAt) {
                trigger.countDown();
            }
        }

        /** An error: expected once the kill is under way (the operation is not acknowledged). */
        final void failed(Throwable e) {
            if (!killer.killed) {
                failureBeforeKill = e;
                trigger.countDown(); // end the round; the test fails on this actor
            }
        }

        abstract void run();

        abstract void check(String where) throws Exception;

        abstract String summary();
    }

    /**
     * Atomic replacement: write a temporary file, fsync it, rename it over the target, and now
     * and then fsync the directory, which acknowledges the renames before it. After the crash the
     * target must hold exactly one whole version: the last acknowledged one or a later renamed
     * one (absent only if none was acknowledged), never a mix, a truncation or zeros.
     */
    static final class Replacer extends Actor {
        final Path dir;
        final Path target;
        /** Lengths of the versions renamed over the target (index = version - 1), the one in flight included. */
        final List<Integer> renamed = new ArrayList<>();
        int acked;

        Replacer(int id, Path dir, SplittableRandom rnd) {
            super(id, rnd);
            this.dir = dir;
            this.target = dir.resolve("replaced");
        }

        @Override
        void run() {
            int dirFd = -1;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buf = arena.allocate(MAX_WRITE, BLOCK);
                dirFd = LinuxSyscalls.open(dir.toString(), LinuxSyscalls.O_RDONLY, 0);
                Path tmp = dir.resolve("replaced.tmp");
                while (true) {
                    int version = renamed.size() + 1;
                    int len = 1 + rnd.nextInt(rnd.nextBoolean() ? 2 * BLOCK : MAX_WRITE);
                    MemorySegment b = buf.asSlice(0, len);
                    for (int i = 0; i < len; i++) {
                        b.set(JAVA_BYTE, i, value(id, i, version));
                    }
                    int fd = LinuxSyscalls.open(tmp.toString(), LinuxSyscalls.O_RDWR | LinuxSyscalls.O_CREAT, 0644);
                    try {
                        if (LinuxSyscalls.pwrite(fd, b, 0) != len) {
                            throw new IllegalStateException("short write");
                        }
                        LinuxSyscalls.fsync(fd);
                    } finally {
                        LinuxSyscalls.close(fd);
                    }
                    renamed.add(len);
                    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
                    if (rnd.nextInt(3) == 0) {
                        LinuxSyscalls.fsync(dirFd);
                        acked = version;
                        syncs++;
                    }
                    completedOne();
                }
            } catch (IOException | RuntimeException e) {
                failed(e);
            } finally {
                if (dirFd >= 0) {
                    try {
                        LinuxSyscalls.close(dirFd);
                    } catch (ErrnoException ignored) {
                        // the mount is gone; the descriptor is released anyway
                    }
                }
            }
        }

        @Override
        void check(String where) throws Exception {
            String ctx = where + ", " + target.getFileName() + " (" + renamed.size() + " versions renamed, version "
                    + acked + " acknowledged by a directory fsync)";
            byte[] actual;
            try {
                actual = Files.readAllBytes(target);
            } catch (NoSuchFileException e) {
                assertThat(acked).as("%s: the target is gone", ctx).isZero();
                return;
            }
            for (int v = Math.max(1, acked); v <= renamed.size(); v++) {
                if (isVersion(actual, v)) {
                    return;
                }
            }
            throw new AssertionError(String.format("%s: holds %d bytes that are none of versions %d..%d (lengths %s)",
                    ctx, actual.length, Math.max(1, acked), renamed.size(),
                    renamed.subList(Math.max(0, acked - 1), renamed.size())));
        }

        private boolean isVersion(byte[] actual, int v) {
            if (actual.length != renamed.get(v - 1)) {
                return false;
            }
            for (int i = 0; i < actual.length; i++) {
                if (actual[i] != value(id, i, v)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        String summary() {
            return ops + " renames/" + syncs + " dir syncs";
        }
    }

    /** One thread, one file, and the model of what the file may hold after a crash. */
    static final class Worker extends Actor {
        final Path file;
        final byte[] shadow = new byte[MAX_FILE];
        long size;
        byte[] synced = new byte[0];
        /** Operations since the last acknowledged fsync, the one in flight at the kill included. */
        final List<Op> since = new ArrayList<>();
        /** Every write of the round, to tell stale data from bytes nobody wrote. */
        final List<Op> all = new ArrayList<>();
        long sizeLo;
        long sizeHi;
        int gen;

        Worker(int id, Path file, SplittableRandom rnd) throws ErrnoException {
            super(id, rnd);
            this.file = file;
            // Created empty; the directory fsync after all are created makes the names durable.
            LinuxSyscalls.close(LinuxSyscalls.open(file.toString(), LinuxSyscalls.O_RDWR | LinuxSyscalls.O_CREAT, 0644));
        }

        @Override
        String summary() {
            return ops + " ops/" + syncs + " syncs";
        }

        @Override
        void run() {
            int fd = -1;
            int dfd = -1;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buf = arena.allocate(MAX_WRITE, BLOCK);
                fd = LinuxSyscalls.open(file.toString(), LinuxSyscalls.O_RDWR, 0);
                dfd = LinuxSyscalls.open(file.toString(), LinuxSyscalls.O_RDWR | LinuxSyscalls.O_DIRECT, 0);
                while (true) {
                    step(fd, dfd, buf);
                    completedOne();
                }
            } catch (ErrnoException | RuntimeException e) {
                failed(e);
            } finally {
                for (int d : new int[] {fd, dfd}) {
                    if (d >= 0) {
                        try {
                            LinuxSyscalls.close(d);
                        } catch (ErrnoException ignored) {
                            // the mount is gone; the descriptor is released anyway
                        }
                    }
                }
            }
        }

        private void step(int fd, int dfd, MemorySegment buf) throws ErrnoException {
            int r = rnd.nextInt(100);
            if (r < 64) {
                write(fd, dfd, buf);
            } else if (r < 72) {
                long to = rnd.nextBoolean() ? (size == 0 ? 0 : rnd.nextLong(size))
                        : Math.min(MAX_FILE, size + rnd.nextInt(4 * BLOCK * 16));
                issue(new Op(Kind.TRUNCATE, to, 0, 0, false), Math.min(to, size), to);
                LinuxSyscalls.ftruncate(rnd.nextBoolean() ? fd : dfd, to);
                for (long i = to; i < size; i++) {
                    shadow[(int) i] = 0;
                }
                size = to;
            } else if (r < 80) {
                long off = rnd.nextInt(MAX_FILE);
                long len = Math.min(1 + rnd.nextInt(8 * BLOCK), MAX_FILE - off);
                issue(new Op(Kind.PUNCH, off, len, 0, false), size, size);
                LinuxSyscalls.fallocate(fd, LinuxSyscalls.FALLOC_FL_PUNCH_HOLE | LinuxSyscalls.FALLOC_FL_KEEP_SIZE, off,
                        len);
                for (long i = off; i < Math.min(off + len, size); i++) {
                    shadow[(int) i] = 0;
                }
            } else {
                boolean data = r < 88;
                int via = rnd.nextBoolean() ? fd : dfd;
                if (data) {
                    LinuxSyscalls.fdatasync(via);
                } else {
                    LinuxSyscalls.fsync(via);
                }
                // Acknowledged: everything completed before it is durable.
                synced = java.util.Arrays.copyOf(shadow, (int) size);
                since.clear();
                sizeLo = size;
                sizeHi = size;
                syncs++;
            }
        }

        private void write(int fd, int dfd, MemorySegment buf) throws ErrnoException {
            boolean aligned = rnd.nextInt(3) == 0;
            boolean direct = aligned && rnd.nextBoolean();
            long off;
            int len;
            int shape = rnd.nextInt(4);
            if (shape == 0) { // extending, from around the end of file
                off = Math.max(0, Math.min(MAX_FILE - 1, size - BLOCK + rnd.nextInt(16 * BLOCK)));
            } else { // overwrites and writes into holes
                off = rnd.nextInt(MAX_FILE);
            }
            len = 1 + (rnd.nextInt(4) == 0 ? rnd.nextInt(MAX_WRITE) : rnd.nextInt(2 * BLOCK));
            if (aligned) {
                off = off / BLOCK * BLOCK;
                len = Math.max(BLOCK, len / BLOCK * BLOCK);
            }
            len = (int) Math.min(len, MAX_FILE - off);
            int g = ++gen;
            MemorySegment b = buf.asSlice(0, len);
            for (int i = 0; i < len; i++) {
                b.set(JAVA_BYTE, i, value(id, off + i, g));
            }
            long newSize = Math.max(size, off + len);
            Op op = new Op(Kind.WRITE, off, len, g, direct);
            all.add(op);
            issue(op, size, newSize);
            long n = LinuxSyscalls.pwrite(direct ? dfd : fd, b, off);
            if (n != len) {
                throw new IllegalStateException("short write: " + n + " of " + len + " at " + off);
            }
            for (int i = 0; i < len; i++) {
                shadow[(int) (off + i)] = b.get(JAVA_BYTE, i);
            }
            size = newSize;
        }

        /** Records an operation before issuing it: once issued, it may or may not survive a crash. */
        private void issue(Op op, long lowest, long resulting) {
            since.add(op);
            sizeLo = Math.min(sizeLo, lowest);
            sizeHi = Math.max(sizeHi, resulting);
        }

        @Override
        void check(String where) throws Exception {
            byte[] actual;
            try {
                actual = Files.readAllBytes(file);
            } catch (NoSuchFileException e) {
                throw new AssertionError(where + ": " + file + " (created and its directory fsynced before the workload) is gone");
            }
            String ctx = where + ", " + file.getFileName() + " (worker " + id + ", " + ops + " ops, " + syncs
                    + " acknowledged syncs)";
            assertThat((long) actual.length)
                    .as("%s: size %d outside [%d, %d], the sizes since the last acknowledged sync; ops since: %s", ctx,
                            actual.length, sizeLo, sizeHi, tail(since))
                    .isBetween(sizeLo, sizeHi);
            for (int o = 0; o < actual.length; o++) {
                byte v = actual[o];
                byte was = o < synced.length ? synced[o] : 0;
                if (v == was || allowedSince(o, v)) {
                    continue;
                }
                boolean everWritten = false;
                for (Op w : all) {
                    if (w.off() <= o && o < w.off() + w.len() && value(id, o, w.gen()) == v) {
                        everWritten = true;
                        break;
                    }
                }
                throw new AssertionError(String.format(
                        "%s: byte %d is %02x; at the last acknowledged sync it was %02x, and %s%n"
                                + "ops since the last acknowledged sync (%d, last 40): %s",
                        ctx, o, v & 0xff, was & 0xff,
                        v == 0 ? "no later truncate, punch or extension can have zeroed it: fsynced data lost"
                                : everWritten ? "only an older write put this value there: fsynced data lost (stale)"
                                        : "no write ever put this value at this offset: garbage",
                        since.size(), tail(since)));
            }
        }

        private boolean allowedSince(int o, byte v) {
            if (v == 0 && o >= synced.length) {
                return true; // past the synced size: a hole from an extension or truncate up
            }
            for (Op op : since) {
                switch (op.kind()) {
                    case WRITE -> {
                        if (op.off() <= o && o < op.off() + op.len() && value(id, o, op.gen()) == v) {
                            return true;
                        }
                    }
                    case TRUNCATE -> {
                        if (v == 0 && o >= op.off()) {
                            return true;
                        }
                    }
                    case PUNCH -> {
                        if (v == 0 && op.off() <= o && o < op.off() + op.len()) {
                            return true;
                        }
                    }
                }
            }
            return false;
        }

        private static String tail(List<Op> ops) {
            return ops.subList(Math.max(0, ops.size() - 40), ops.size()).toString();
        }
    }

    /** The byte write generation {@code gen} of file {@code file} puts at {@code off}; never 0. */
    static byte value(int file, long off, int gen) {
        long x = (file + 1L) * 0x9E3779B97F4A7C15L ^ off * 0xC2B2AE3D27D4EB4FL ^ (gen + 7L) * 0x165667B19E3779F9L;
        x ^= x >>> 32;
        x *= 0xD6E8FEB86659FD93L;
        x ^= x >>> 29;
        byte b = (byte) x;
        return b == 0 ? 1 : b;
    }
}
