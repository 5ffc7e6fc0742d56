package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.FsRig.n;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * Threads doing namespace and data operations at once, in a shared directory and in their own:
 * no deadlock, no lost or mixed-up data, and an image fsck finds clean afterwards.
 */
class ConcurrentVfsTest {
    private static final int THREADS = 4;
    private static final int OPS = 250;

    @Test
    void mixedOperationsFromSeveralThreadsLeaveAConsistentImage() throws Exception {
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        try (FsRig rig = new FsRig("concurrent", 128L << 20)) {
            Vfs fs = rig.fs;
            long shared = fs.mkdir(Vfs.ROOT, n("shared"), 0777, Caller.ROOT).ino();
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int id = t;
                threads.add(Thread.ofPlatform().name("vfs-" + t).start(() -> {
                    try {
                        work(fs, shared, id);
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
            assertThat(failures).isEmpty();
            fs.sync();
        }
        try (FsRig again = FsRig.existing("concurrent")) {
            FsckReport report = Fsck.run(again.device, Fsck.Options.READ_ONLY);
            assertThat(report.exitCode()).as(String.join("\n", report.lines())).isZero();
        }
    }

    /** One thread: its own directory of files it writes and checks, and churn in the shared one. */
    private static void work(Vfs fs, long shared, int id) throws Exception {
        Random r = new Random(id);
        long mine = fs.mkdir(Vfs.ROOT, n("t" + id), 0755, Caller.ROOT).ino();
        List<long[]> files = new ArrayList<>();  // {ino, size, seed}
        for (int op = 0; op < OPS; op++) {
            switch (r.nextInt(6)) {
                case 0 -> {
                    long ino = fs.mknod(mine, n("f" + op), 0644, 0, Caller.ROOT).ino();
                    files.add(new long[] {ino, 0, 0});
                }
                case 1 -> {
                    if (!files.isEmpty()) {
                        long[] f = files.get(r.nextInt(files.size()));
                        int size = 1 + r.nextInt(20_000);
                        byte[] data = new byte[size];
                        new Random(op * 31L + id).nextBytes(data);
                        OpenFile h = fs.open(f[0], OpenFile.O_RDWR | OpenFile.O_TRUNC);
                        fs.write(h, 0, MemorySegment.ofArray(data));
                        fs.release(h);
                        f[1] = size;
                        f[2] = op * 31L + id;
                    }
                }
                case 2 -> {
                    if (!files.isEmpty()) {
                        long[] f = files.get(r.nextInt(files.size()));
                        byte[] want = new byte[(int) f[1]];
                        if (f[1] > 0) {
                            new Random(f[2]).nextBytes(want);
                        }
                        byte[] got = new byte[(int) f[1] + 10];
                        OpenFile h = fs.open(f[0], OpenFile.O_RDONLY);
                        int n = fs.read(h, 0, MemorySegment.ofArray(got));
                        fs.release(h);
                        assertThat(Arrays.copyOf(got, n)).as("thread " + id + " file " + f[0]).isEqualTo(want);
                    }
                }
                case 3 -> {
                    try {
                        fs.mknod(shared, n("s" + r.nextInt(40)), 0644, 0, Caller.ROOT);
                    } catch (ErrnoException e) {
                        assertThat(e.errno()).isEqualTo(17);
                    }
                }
                case 4 -> {
                    try {
                        fs.rename(shared, n("s" + r.nextInt(40)), shared, n("s" + r.nextInt(40)), 0);
                    } catch (ErrnoException e) {
                        assertThat(e.errno()).isEqualTo(2);
                    }
                }
                default -> {
                    try {
                        fs.unlink(shared, n("s" + r.nextInt(40)));
                    } catch (ErrnoException e) {
                        assertThat(e.errno()).isEqualTo(2);
                    }
                }
            }
        }
    }
}
