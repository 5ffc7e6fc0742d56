package io.coherentfs.core.buffered;

import static io.coherentfs.core.buffered.BufRig.PAGE;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Power cuts with buffered data in the page cache (issue 4). The engine runs over a
 * {@link FaultyDevice} wrapping a real {@link DirectDevice}, with a small page cache (so the
 * flusher and throttled writers write back all the time) and a fast journal commit timer. Each
 * round runs a random workload of buffered overwrites, appends, writes far past EOF and
 * truncates over a few files, with fsync and sync at random points, then cuts the power
 * ({@link FaultyDevice#crash}: every write not covered by a flush lands whole, torn or not at
 * all), remounts (journal replay) and checks, for every file, against what was durable:
 * <ul>
 *   <li>fsck of the image before the mount is clean;
 *   <li>let F be the file's content at its last fsync (or sync) and K the smallest size it had
 *       since: the recovered size is at least min(|F|, K) and at most the largest size it had;
 *   <li>every byte below min(|F|, K) is F's byte or one that a write since the fsync put at that
 *       offset: nothing fsynced is lost;
 *   <li>every byte above is zero, F's byte, or one a write since the fsync put there: never a
 *       byte that was not written at that offset (no stale data of earlier contents, of other
 *       files or of freed blocks).
 * </ul>
 * Bytes are a function of (inode, offset, write), never zero. The recovered state is the next
 * round's starting point. One test cuts between operations from the test thread; the other cuts
 * from a second thread while the workload (and the flusher) run, so mid-operation.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class BufferedCrashTest {
    private static final int FILES = 3;
    private static final int MAX_SIZE = 1 << 20;
    private static final int ROUNDS = Integer.getInteger("coherentfs.buffered.crashRounds", 35);

    @Test
    void cutsBetweenOperations() throws Exception {
        run("between", 1001, false);
    }

    @Test
    void cutsFromAnotherThreadWhileOperationsRun() throws Exception {
        run("concurrent", 2002, true);
    }

    private static final class FileState {
        final long ino;
        OpenFile handle;
        /** What completed operations made of the file. */
        byte[] current = new byte[0];
        /** The content at the last fsync or sync. */
        byte[] durable = new byte[0];
        /** Writes issued since (offset, length, generation), failed or not. */
        final List<long[]> writesSince = new ArrayList<>();
        long minSizeSince;
        long maxSizeSince;

        FileState(long ino) {
            this.ino = ino;
        }

        void madeDurable() {
            durable = current.clone();
            writesSince.clear();
            minSizeSince = durable.length;
            maxSizeSince = durable.length;
        }
    }

    private void run(String name, long seed, boolean concurrent) throws Exception {
        Path image = Path.of("target/test-images/buffered-crash-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 32L << 20);
        Random setup = new Random(seed);
        long cache = new long[] {256 << 10, 512 << 10, 1 << 20}[setup.nextInt(3)];
        Duration commit = setup.nextBoolean() ? Duration.ZERO : Duration.ofMillis(1 + setup.nextInt(3));
        CoherentFs.Options options = new CoherentFs.Options(false, JournalOptions.DEFAULTS.withCommitInterval(commit))
                .withCacheBytes(cache);
        long started = System.nanoTime();
        int ops = 0;
        try (DirectDevice direct = DirectDevice.open(image)) {
            FaultyDevice faulty = new FaultyDevice(direct);
            CoherentFs.mkfs(faulty, "bufcrash", new UUID(seed, 1), Caller.ROOT);
            CoherentFs fs = CoherentFs.open(faulty, options);
            FileState[] files = new FileState[FILES];
            for (int i = 0; i < FILES; i++) {
                long ino = fs.mknod(Vfs.ROOT, BufRig.n("f" + i), 0644, 0, Caller.ROOT).ino();
                fs.forget(ino, 1);
                files[i] = new FileState(ino);
                files[i].handle = fs.open(ino, OpenFile.O_RDWR);
                files[i].madeDurable();
            }
            fs.sync();
            long generation = 0;
            for (int round = 0; round < ROUNDS; round++) {
                Random r = new Random(seed * 1_000_003L + round);
                String where = "BufferedCrashTest " + name + " seed " + seed + " round " + round + " (cache " + cache
                        + ", commit every " + commit.toMillis() + " ms)";
                Deque<String> log = new ArrayDeque<>();
                int count = 5 + r.nextInt(40);
                int cutAfter = r.nextInt(count);
                CountDownLatch go = new CountDownLatch(1);
                Random crashRandom = new Random(r.nextLong());
                CoherentFs dying = fs;
                CompletableFuture<Void> crasher = null;
                if (concurrent) {
                    crasher = CompletableFuture.runAsync(() -> {
                        try {
                            go.await();
                            faulty.crash(crashRandom);
                        } catch (Exception e) {
                            throw new RuntimeException(e);
                        }
                    }, runnable -> Thread.ofPlatform().name("crasher").start(runnable));
                }
                try {
                    for (int i = 0; i < count; i++) {
                        if (i == cutAfter) {
                            if (concurrent) {
                                go.countDown(); // the cut races with the operations that follow
                            } else {
                                break;
                            }
                        }
                        FileState f = files[r.nextInt(FILES)];
                        ops++;
                        step(dying, r, f, files, ++generation, log);
                    }
                } catch (IOException | RuntimeException e) {
                    log.add("  -> failed: " + e); // the cut came first
                }
                if (concurrent) {
                    go.countDown();
                    crasher.join();
                } else {
                    faulty.crash(crashRandom);
                }
                // reboot: the dead instance's close lands nothing
                dying.meta().journal().abort(new IOException("simulated power cut"));
                try {
                    dying.close();
                } catch (IOException | RuntimeException ignored) {
                    // a dead instance's close may fail
                }
                faulty.clearFaults();
                faulty.revive();
                String context = where + "; operations:\n  " + String.join("\n  ", log);
                BufRig.assertFsckClean(faulty, context);
                fs = CoherentFs.open(faulty, options);
                for (FileState f : files) {
                    f.handle = fs.open(f.ino, OpenFile.O_RDWR);
                    byte[] got = BufRig.readAll(fs, f.handle);
                    check(f, got, context);
                    f.current = got;
                }
                fs.sync();
                for (FileState f : files) {
                    f.madeDurable();
                }
            }
            fs.close();
            BufRig.assertFsckClean(faulty, "BufferedCrashTest " + name + " after the last round");
        }
        System.out.printf("BufferedCrashTest %s seed %d: %d power cuts recovered and checked, %d operations, %.1f s%n",
                name, seed, ROUNDS, ops, (System.nanoTime() - started) / 1e9);
    }

    private static void step(CoherentFs fs, Random r, FileState f, FileState[] files, long generation,
            Deque<String> log) throws IOException {
        int k = r.nextInt(100);
        int size = f.current.length;
        if (k < 55) {
            long offset;
            int kind = r.nextInt(4);
            if (kind == 0 || size == 0) {
                offset = size; // append
            } else if (kind == 1) {
                offset = size + r.nextInt(256 << 10); // past EOF, leaving a hole
            } else {
                offset = r.nextInt(size); // overwrite, maybe extending
            }
            int n = r.nextBoolean() ? 1 + r.nextInt(2 * PAGE) : 1 + r.nextInt(128 << 10);
            offset = Math.min(offset, MAX_SIZE - 1);
            n = (int) Math.min(n, MAX_SIZE - offset);
            byte[] d = BufRig.data(f.ino, offset, n, generation);
            log.add("write " + f.ino + " [" + offset + ", " + (offset + n) + ") gen " + generation + " size " + size);
            f.writesSince.add(new long[] {offset, n, generation});
            f.maxSizeSince = Math.max(f.maxSizeSince, offset + n);
            int got = fs.write(f.handle, offset, MemorySegment.ofArray(d));
            if (got != n) {
                // write(2) comes up short when the device fails part way (the cut, from another
                // thread): what it did write stays in f.writesSince, like any unsynced write
                throw new IOException("short write " + got + " of " + n + " (the device failed part way)");
            }
            if (offset + n > size) {
                f.current = Arrays.copyOf(f.current, (int) (offset + n));
            }
            System.arraycopy(d, 0, f.current, (int) offset, n);
        } else if (k < 75) {
            int newSize = r.nextBoolean() ? (size == 0 ? 0 : r.nextInt(size + 1)) : Math.min(MAX_SIZE, size + r.nextInt(64 << 10));
            log.add("truncate " + f.ino + " " + size + " -> " + newSize);
            f.minSizeSince = Math.min(f.minSizeSince, newSize);
            f.maxSizeSince = Math.max(f.maxSizeSince, newSize);
            fs.setattr(f.ino, SetAttr.size(newSize));
            f.current = Arrays.copyOf(f.current, newSize);
        } else if (k < 92) {
            log.add("fsync " + f.ino);
            fs.fsync(f.handle, r.nextBoolean());
            f.madeDurable();
        } else {
            log.add("sync");
            fs.sync();
            for (FileState g : files) {
                g.madeDurable();
            }
        }
    }

    private static void check(FileState f, byte[] got, String where) {
        String what = where + "\ninode " + f.ino + ": fsynced size " + f.durable.length + ", smallest size since "
                + f.minSizeSince + ", largest " + f.maxSizeSince + ", recovered size " + got.length;
        long keep = Math.min(f.durable.length, f.minSizeSince);
        assertThat((long) got.length).as(what).isBetween(keep, Math.max(f.maxSizeSince, f.durable.length));
        for (int i = 0; i < got.length; i++) {
            byte b = got[i];
            if (i < f.durable.length && b == f.durable[i]) {
                continue;
            }
            if (b == 0 && i >= keep) {
                continue;
            }
            boolean written = false;
            for (long[] w : f.writesSince) {
                if (i >= w[0] && i < w[0] + w[1] && b == BufRig.pattern(f.ino, i, w[2])) {
                    written = true;
                    break;
                }
            }
            if (!written) {
                throw new AssertionError(what + ": byte " + i + " (page " + i / PAGE + ") is " + b + ", but "
                        + (i < keep ? "the fsynced byte was " + f.durable[i] + " and no write since put " + b + " there"
                                : "that is neither zero, the fsynced byte nor one a write since put there"));
            }
        }
    }
}
