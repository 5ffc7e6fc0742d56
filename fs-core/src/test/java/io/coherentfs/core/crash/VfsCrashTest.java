package io.coherentfs.core.crash;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.crash.Shadow.Entry;
import io.coherentfs.core.crash.Shadow.History;
import io.coherentfs.core.crash.Shadow.Node;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.DirEntry;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.StatFs;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

/**
 * Power cuts under random namespace and file workloads through the {@link Vfs}, checked against a
 * {@link Shadow} model after the journal replays.
 *
 * <p>Each test formats one 24 MiB image and runs rounds on it; a round starts from the state the
 * previous recovery left (so the log wraps and replays pile up), runs up to ~40 operations (mkdir,
 * mknod, symlink, writes with holes and overwrites, truncate, rename plain/NOREPLACE/EXCHANGE,
 * link, unlink, rmdir, fsync, sync, read-back, calls that must fail with a given errno), cuts the
 * power, remounts and checks:
 * <ul>
 *   <li>it mounts (replay);</li>
 *   <li>structure: every directory reads completely in small batches, each name once, "." and ".."
 *       right; every entry's inode answers getattr and lookup with the entry's type; no directory
 *       is reachable twice; nlink = names for files, 2 + subdirectories for directories;</li>
 *   <li>the namespace equals the model's after some prefix of the round's operations that includes
 *       every operation before the last completed sync (operations are transactions committed in
 *       order, so none is half-done and none overtakes another);</li>
 *   <li>every file fsynced (or covered by a sync) and not touched since has exactly the size and
 *       content it had then; a cut right after a sync loses nothing at all;</li>
 *   <li>no file holds a byte that was never written at that offset of that file (bytes are a
 *       function of inode, offset and write), and every size is one the file had;</li>
 *   <li>statfs: free blocks + the files' blocks never exceed the empty filesystem's free blocks;</li>
 *   <li>{@link #assertFsckClean}: a read-only fsck of the image before the new mount is clean.</li>
 * </ul>
 *
 * <p>The cut comes right after an fsync or sync, between operations (with the commit thread on
 * a 1-3 ms timer, so often mid-commit), at the Nth device request of the round (deterministic,
 * mid-operation), from another thread while operations run, or after an injected EIO / torn write
 * / device full. Seeds are fixed and every failure message names the test seed, the round and the
 * operations of the round (with the inode numbers they got). Operations, their arguments and the
 * cut points are drawn from the seed; what the journal's commit thread does meanwhile (timed
 * commits, checkpoints) depends on timing, so a rerun takes the same decisions but may cut a
 * slightly different image. {@code -Dcoherentfs.crash.rounds=N} changes the rounds per test.
 */
class VfsCrashTest {
    private static final long IMAGE = 24L << 20;
    private static final int ROUNDS = Integer.getInteger("coherentfs.crash.rounds", 60);
    private static final Caller ME = new Caller(1000, 1000);
    private static final int MAX_SIZE = 192 << 10;
    private static final long MAX_BYTES = 6L << 20;
    private static final Set<Integer> LOGIC_ERRNOS = Set.of(1, 2, 9, 17, 18, 20, 21, 22, 31, 36, 39);
    private static final int ENOENT = 2, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, ENOTEMPTY = 39;


    enum Mode { AFTER_SYNC, BETWEEN_OPERATIONS, AT_NTH_REQUEST, FROM_ANOTHER_THREAD, INJECTED_FAULTS }

    @Test
    void cutsRightAfterFsyncOrSync() throws Exception {
        assertThat(run(Mode.AFTER_SYNC, ROUNDS, 101)).isEqualTo(ROUNDS);
    }

    @Test
    void cutsBetweenOperationsWhileTheCommitThreadRuns() throws Exception {
        assertThat(run(Mode.BETWEEN_OPERATIONS, ROUNDS, 202)).isEqualTo(ROUNDS);
    }

    @Test
    void cutsAtTheNthDeviceRequestMidOperation() throws Exception {
        assertThat(run(Mode.AT_NTH_REQUEST, ROUNDS, 303)).isEqualTo(ROUNDS);
    }

    @Test
    void cutsFromAnotherThreadWhileOperationsRun() throws Exception {
        assertThat(run(Mode.FROM_ANOTHER_THREAD, ROUNDS, 404)).isEqualTo(ROUNDS);
    }

    @Test
    void injectedIoErrorsTornWritesAndFullDeviceThenCuts() throws Exception {
        assertThat(run(Mode.INJECTED_FAULTS, ROUNDS, 505)).isEqualTo(ROUNDS);
    }

    /**
     * fsck of the image after the cut (device alive again, nothing mounted): a read-only check,
     * which replays the journal into memory and so sees the image as the next mount will, must
     * find nothing (e2fsck's exit 0).
     */
    static void assertFsckClean(BlockDevice device, String where) {
        FsckReport report = Fsck.run(device, Fsck.Options.READ_ONLY);
        if (!report.clean()) {
            throw new AssertionError(where + ": fsck after the power cut:\n" + report);
        }
    }

    /** Runs {@code rounds} crash rounds; returns how many recoveries were checked. */
    private int run(Mode mode, int rounds, long seed) throws Exception {
        java.util.Random first = new java.util.Random(seed);
        long started = System.nanoTime();
        long opsBefore = Workload.operations;
        int midBefore = Workload.midOperationCuts;
        int checked = 0;
        try (CrashRig rig = new CrashRig(mode.name().toLowerCase(java.util.Locale.ROOT), IMAGE, options(mode, first))) {
            Shadow model = new Shadow();
            Workload w = new Workload(rig, model, mode);
            for (int round = 0; round < rounds; round++) {
                java.util.Random random = new java.util.Random(seed * 1_000_003L + round);
                String where = "VfsCrashTest " + mode + " seed " + seed + " round " + round;
                w.round(random, where);
                checked++;
            }
        }
        System.out.printf("VfsCrashTest %s seed %d: %d power cuts recovered and checked (%d at a device request"
                + " inside an operation), %d operations, %.1f s%n", mode,
                seed, checked, Workload.midOperationCuts - midBefore, Workload.operations - opsBefore,
                (System.nanoTime() - started) / 1e9);
        return checked;
    }

    private static JournalOptions options(Mode mode, java.util.Random random) {
        if (mode == Mode.AT_NTH_REQUEST) {
            return JournalOptions.DEFAULTS.withCommitInterval(Duration.ZERO).withCheckpointInterval(Duration.ZERO)
                    .withCheckpointPercent(new int[] {10, 50, 100}[random.nextInt(3)]);
        }
        Duration commit = random.nextInt(3) == 0 ? Duration.ZERO : Duration.ofMillis(1 + random.nextInt(3));
        Duration checkpoint = random.nextInt(3) == 0 ? Duration.ofMillis(2) : Duration.ZERO;
        int percent = new int[] {10, 50, 100}[random.nextInt(3)];
        return JournalOptions.DEFAULTS.withCommitInterval(commit).withCheckpointInterval(checkpoint)
                .withCheckpointPercent(percent);
    }

    @FunctionalInterface
    interface Call {
        void run() throws IOException;
    }

    /**
     * One operation: {@code before} updates the model's history before the call (a failed write
     * may still land), {@code call} runs it, {@code after} updates the model once it returned.
     * {@code createType} != 0 marks a create whose inode number only the call knows.
     */
    record Op(String what, Runnable before, Call call, Runnable after, int createType, long dir, String name,
            byte[] target, boolean sync) {
        static Op of(String what, Call call, Runnable after) {
            return new Op(what, null, call, after, 0, 0, null, null, false);
        }
    }

    /** The operation generator and checker of one test, across its rounds. */
    private static final class Workload {
        private final CrashRig rig;
        private final Shadow m;
        private final Mode mode;
        private java.util.Random r;
        private String where;
        private CoherentFs fs;
        private final Map<Long, OpenFile> handles = new HashMap<>();
        private final Map<Long, Long> lookups = new HashMap<>();
        private long names;
        private long generation;
        private volatile boolean armed;
        private double requestsPerOp = 8;

        Workload(CrashRig rig, Shadow m, Mode mode) {
            this.rig = rig;
            this.m = m;
            this.mode = mode;
            this.fs = rig.fs;
        }

        void round(java.util.Random random, String where) throws Exception {
            this.r = random;
            this.where = where;
            m.beginRound();
            handles.clear();
            lookups.clear();
            armed = false;
            int ops = 8 + r.nextInt(33);
            String cut;
            switch (mode) {
                case AFTER_SYNC -> {
                    int n = r.nextInt(ops);
                    boolean ok = steps(n);
                    assertThat(ok).as(where).isTrue();
                    List<Node> files = m.files();
                    Op last = files.isEmpty() || r.nextInt(3) == 0 ? syncOp() : fsyncOp(files);
                    assertThat(execute(last)).as(where).isTrue();
                    cut = "after op " + n + " (" + last.what() + ")";
                    rig.faulty.crash(new java.util.Random(r.nextLong()));
                }
                case BETWEEN_OPERATIONS -> {
                    int n = r.nextInt(ops + 1);
                    assertThat(steps(n)).as(where).isTrue();
                    cut = "after op " + n;
                    rig.faulty.crash(new java.util.Random(r.nextLong()));
                }
                case AT_NTH_REQUEST -> {
                    long nth = 1 + r.nextInt((int) Math.max(2, requestsPerOp * ops));
                    long before = rig.device.requests();
                    rig.device.cutAtRequest(nth, new java.util.Random(r.nextLong()));
                    armed = true;
                    int done = stepsUntilFailure(ops);
                    if (done == ops && !rig.device.hasCut()) {
                        requestsPerOp = 0.8 * requestsPerOp + 0.2 * (rig.device.requests() - before) / (double) ops;
                        rig.device.disarm();
                        rig.faulty.crash(new java.util.Random(r.nextLong()));
                        cut = "at the end (request " + nth + " not reached)";
                    } else {
                        cut = "at request " + nth + " of the round, during op " + done;
                        midOperationCuts++;
                    }
                }
                case FROM_ANOTHER_THREAD -> {
                    int k = r.nextInt(ops);
                    CountDownLatch go = new CountDownLatch(1);
                    java.util.Random cutRandom = new java.util.Random(r.nextLong());
                    Throwable[] crasherFailed = {null};
                    Thread crasher = Thread.ofPlatform().name("crasher").start(() -> {
                        try {
                            go.await();
                            rig.faulty.crash(cutRandom);
                        } catch (Throwable t) {
                            crasherFailed[0] = t;
                        }
                    });
                    int done;
                    try {
                        assertThat(steps(k)).as(where).isTrue();
                        armed = true;
                        go.countDown();
                        done = k + stepsUntilFailure(ops - k);
                    } finally {
                        go.countDown();
                        crasher.join();
                    }
                    assertThat(crasherFailed[0]).as(where).isNull();
                    cut = "from another thread released before op " + k + "; " + done + " ops completed";
                }
                case INJECTED_FAULTS -> {
                    int k = r.nextInt(ops);
                    assertThat(steps(k)).as(where).isTrue();
                    String fault;
                    switch (r.nextInt(3)) {
                        case 0 -> {
                            int n = 1 + r.nextInt(40);
                            rig.faulty.failNthIo(n);
                            fault = "EIO on IO #" + n;
                        }
                        case 1 -> {
                            int s = r.nextInt(8);
                            rig.faulty.tearNextWrite(s);
                            fault = "next write torn after " + s + " sectors";
                        }
                        default -> {
                            long limit = (2L << 20) + (long) r.nextInt((int) ((IMAGE - (2L << 20)) / 4096)) * 4096;
                            rig.faulty.limitSpace(limit);
                            fault = "device full past " + limit;
                        }
                    }
                    armed = true;
                    int done = k + stepsUntilFailure(ops - k);
                    cut = fault + " injected before op " + k + "; " + done + " ops completed";
                    rig.faulty.crash(new java.util.Random(r.nextLong()));
                }
                default -> throw new IllegalStateException();
            }
            m.log.add("-- power cut " + cut);
            fs = rig.recover(options(mode, r), device -> assertFsckClean(device, where + "\n" + log()));
            recoveredChecks();
        }

        /** Runs {@code n} operations; false if one failed (only possible once armed). */
        private boolean steps(int n) throws Exception {
            for (int i = 0; i < n; i++) {
                if (!execute(pick())) {
                    return false;
                }
            }
            return true;
        }

        /** Runs up to {@code n} operations, stopping at the first that fails; returns how many completed. */
        private int stepsUntilFailure(int n) throws Exception {
            for (int i = 0; i < n; i++) {
                if (!execute(pick())) {
                    return i;
                }
            }
            return n;
        }

        // ---- running operations ------------------------------------------------------------

        private boolean execute(Op op) {
            operations++;
            m.log.add(op.what());
            TreeMap<String, String> before = m.snapshots.get(m.snapshots.size() - 1);
            if (op.before() != null) {
                op.before().run();
            }
            try {
                op.call().run();
            } catch (IOException e) {
                if (!armed || (e instanceof ErrnoException ee && LOGIC_ERRNOS.contains(ee.errno()))) {
                    throw new AssertionError(where + ": " + op.what() + " failed: " + e + "\n" + log(), e);
                }
                m.log.add("   failed: " + e);
                m.maybeWhat = op.what();
                if (op.createType() != 0) {
                    String key = Shadow.key(op.dir(), op.name());
                    String shape = Shadow.describeUnknownIno(op.createType(), op.target());
                    m.maybe = ns -> {
                        String v = ns.get(key);
                        if (v == null || !v.endsWith(shape) || before.containsKey(key)) {
                            return false;
                        }
                        TreeMap<String, String> rest = new TreeMap<>(ns);
                        rest.remove(key);
                        return rest.equals(before);
                    };
                } else {
                    // The namespace as if it took effect; a failed fsync makes nothing durable.
                    Map<Long, byte[]> durable = new HashMap<>(m.durable);
                    op.after().run();
                    m.durable.keySet().retainAll(durable.keySet());
                    TreeMap<String, String> after = m.namespace();
                    m.maybe = after::equals;
                }
                return false;
            }
            op.after().run();
            m.completed();
            if (op.sync()) {
                m.synced();
            }
            return true;
        }

        private String log() {
            StringBuilder b = new StringBuilder("operations of the round:\n");
            for (int i = 0; i < m.log.size(); i++) {
                b.append("  ").append(m.log.get(i)).append('\n');
            }
            return b.toString();
        }

        private String name(String prefix) {
            return prefix + Long.toString(names++, 36);
        }

        private static byte[] b(String s) {
            return s.getBytes(StandardCharsets.UTF_8);
        }

        private <T> T any(List<T> list) {
            return list.get(r.nextInt(list.size()));
        }

        static long operations;
        static int midOperationCuts;

        private void looked(long ino) {
            lookups.merge(ino, 1L, Long::sum);
        }

        private OpenFile handle(long ino) throws IOException {
            OpenFile h = handles.get(ino);
            if (h == null) {
                h = fs.open(ino, OpenFile.O_RDWR);
                handles.put(ino, h);
            }
            return h;
        }

        /** The last name of {@code ino} went: sometimes let it go now (release, forget: evicted). */
        private void maybeLetGo(long ino) throws IOException {
            if (r.nextBoolean()) {
                OpenFile h = handles.remove(ino);
                if (h != null) {
                    fs.release(h);
                }
                Long n = lookups.remove(ino);
                if (n != null) {
                    fs.forget(ino, n);
                }
            }
        }

        private Op pick() {
            for (int attempt = 0; attempt < 50; attempt++) {
                List<Node> dirs = m.dirs();
                List<Node> files = m.files();
                List<Entry> entries = m.entries();
                int w = r.nextInt(100);
                Op op;
                if (w < 8) {
                    op = dirs.size() < 12 ? mkdir(dirs) : null;
                } else if (w < 20) {
                    op = files.size() < 40 ? mknod(dirs) : null;
                } else if (w < 24) {
                    op = entries.size() < 80 ? symlink(dirs) : null;
                } else if (w < 46) {
                    op = files.isEmpty() ? null : write(files);
                } else if (w < 53) {
                    op = files.isEmpty() ? null : truncate(files);
                } else if (w < 63) {
                    op = entries.isEmpty() ? null : rename(entries, dirs);
                } else if (w < 68) {
                    op = entries.isEmpty() ? null : link(entries, dirs);
                } else if (w < 76) {
                    op = unlink(entries);
                } else if (w < 80) {
                    op = rmdir(entries);
                } else if (w < 87) {
                    op = files.isEmpty() ? null : fsyncOp(files);
                } else if (w < 89) {
                    op = syncOp();
                } else if (w < 94) {
                    op = files.isEmpty() ? null : verify(files);
                } else {
                    op = expectedError(entries, dirs);
                }
                if (op != null) {
                    return op;
                }
            }
            return syncOp();
        }

        private Op create(List<Node> dirs, String prefix, int type, byte[] target) {
            Node p = any(dirs);
            String nm = name(prefix);
            long[] got = {0};
            String what = switch (type) {
                case Shadow.DIR -> "mkdir ";
                case Shadow.REG -> "mknod ";
                default -> "symlink(" + target.length + " bytes) ";
            } + Shadow.key(p.ino, nm);
            return new Op(what, null, () -> {
                Attr a = switch (type) {
                    case Shadow.DIR -> fs.mkdir(p.ino, b(nm), 0755, ME);
                    case Shadow.REG -> fs.mknod(p.ino, b(nm), Shadow.REG | 0644, 0, ME);
                    default -> fs.symlink(p.ino, b(nm), target, ME);
                };
                got[0] = a.ino();
                looked(a.ino());
                if (a.type() != type) {
                    throw new AssertionError(where + ": " + nm + " created with mode " + Integer.toOctalString(a.mode()));
                }
            }, () -> {
                m.add(p.ino, nm, got[0], type, target);
                m.log.set(m.log.size() - 1, m.log.get(m.log.size() - 1) + " = ino " + got[0]);
            }, type, p.ino, nm, target, false);
        }

        private Op mkdir(List<Node> dirs) {
            return create(dirs, "d", Shadow.DIR, null);
        }

        private Op mknod(List<Node> dirs) {
            return create(dirs, "f", Shadow.REG, null);
        }

        private Op symlink(List<Node> dirs) {
            int len = r.nextBoolean() ? 1 + r.nextInt(100) : 1 + r.nextInt(300);
            byte[] target = new byte[len];
            for (int i = 0; i < len; i++) {
                target[i] = (byte) ('a' + r.nextInt(26));
            }
            return create(dirs, "s", Shadow.LNK, target);
        }

        private Op write(List<Node> files) {
            Node f = any(files);
            long ino = f.ino;
            int size = f.content.length;
            long off;
            int len;
            switch (r.nextInt(4)) {
                case 0 -> {  // anywhere: holes, extensions
                    off = r.nextInt(MAX_SIZE - (32 << 10));
                    len = 1 + r.nextInt(r.nextBoolean() ? 4096 : 32768);
                }
                case 1 -> {  // append
                    off = size;
                    len = 1 + r.nextInt(8192);
                }
                case 2 -> {  // overwrite inside
                    off = size == 0 ? 0 : r.nextInt(size);
                    len = 1 + r.nextInt(r.nextBoolean() ? 512 : 8192);
                }
                default -> {  // whole blocks
                    off = (long) r.nextInt(40) * 4096;
                    len = 4096 * (1 + r.nextInt(4));
                }
            }
            if (off + len > MAX_SIZE) {
                off = Math.max(0, MAX_SIZE - len);
            }
            if (off + len > size && m.totalBytes() + (off + len - size) > MAX_BYTES) {
                return null;
            }
            long gen = ++generation;
            long at = off;
            byte[] data = Shadow.data(ino, off, len, gen);
            int length = len;
            return new Op("write ino " + ino + " [" + off + ", +" + len + ") gen " + gen,
                    () -> m.writing(ino, at, length, gen), () -> {
                        int n = fs.write(handle(ino), at, MemorySegment.ofArray(data));
                        if (n != length) {
                            throw new AssertionError(where + ": short write " + n + " of " + length);
                        }
                    }, () -> m.wrote(ino, at, data), 0, 0, null, null, false);
        }

        private Op truncate(List<Node> files) {
            Node f = any(files);
            long ino = f.ino;
            int size = f.content.length;
            long to = switch (r.nextInt(4)) {
                case 0 -> 0;
                case 1 -> Math.max(0, size - 1 - r.nextInt(6000));
                case 2 -> size + 1 + r.nextInt(6000);
                default -> r.nextInt(MAX_SIZE);
            };
            if (to > MAX_SIZE || (to > size && m.totalBytes() + to - size > MAX_BYTES)) {
                return null;
            }
            return new Op("truncate ino " + ino + " " + size + " -> " + to, () -> m.truncating(ino, to), () -> {
                Attr a = fs.setattr(ino, SetAttr.size(to));
                if (a.size() != to) {
                    throw new AssertionError(where + ": setattr size " + to + " returned " + a.size());
                }
            }, () -> m.truncated(ino, to), 0, 0, null, null, false);
        }

        private Op rename(List<Entry> entries, List<Node> dirs) {
            Entry src = any(entries);
            int kind = r.nextInt(10);
            int flags = kind < 5 ? 0 : kind < 7 ? Vfs.RENAME_NOREPLACE : Vfs.RENAME_EXCHANGE;
            boolean toExisting = flags == Vfs.RENAME_EXCHANGE || r.nextBoolean();
            Entry dst = toExisting ? any(entries) : null;
            long toDir = dst != null ? dst.dir() : any(dirs).ino;
            String toName = dst != null ? dst.name() : name(src.node().isDir() ? "d" : src.node().type == Shadow.REG ? "f" : "s");
            if (src.dir() == toDir && src.name().equals(toName)) {
                return null;
            }
            Node s = src.node();
            Node t = dst == null ? null : dst.node();
            String what = "rename" + (flags == 0 ? "" : flags == Vfs.RENAME_NOREPLACE ? "(NOREPLACE)" : "(EXCHANGE)")
                    + " " + Shadow.key(src.dir(), src.name()) + " (ino " + s.ino + ") -> " + Shadow.key(toDir, toName)
                    + (t == null ? "" : " (ino " + t.ino + ")");
            Call call = () -> fs.rename(src.dir(), b(src.name()), toDir, b(toName), flags);
            if (flags == Vfs.RENAME_EXCHANGE) {
                if (t.ino == s.ino) {
                    return null;
                }
                if (s.isDir() && src.dir() != toDir && m.isAncestor(s.ino, toDir)) {
                    return null;
                }
                if (t.isDir() && src.dir() != toDir && m.isAncestor(t.ino, src.dir())) {
                    return null;
                }
                return Op.of(what, call, () -> m.exchange(src.dir(), src.name(), toDir, toName));
            }
            if (flags == Vfs.RENAME_NOREPLACE && t != null && t.ino == s.ino) {
                return null;  // Linux says EEXIST, the engine 0: EngineEdgeCasesTest
            }
            if (flags == Vfs.RENAME_NOREPLACE && t != null) {
                return Op.of(what + " must fail EEXIST", expect(EEXIST, call), () -> { });
            }
            if (t != null && t.ino != s.ino) {
                if (s.isDir() && (!t.isDir() || !t.children.isEmpty())) {
                    return null;
                }
                if (!s.isDir() && t.isDir()) {
                    return null;
                }
            }
            if (s.isDir() && m.isAncestor(s.ino, toDir)) {
                return null;
            }
            boolean lastLinkOfTarget = t != null && t.ino != s.ino && !t.isDir() && t.links == 1;
            return Op.of(what, () -> {
                call.run();
                if (lastLinkOfTarget) {
                    maybeLetGo(t.ino);
                }
            }, () -> m.rename(src.dir(), src.name(), toDir, toName));
        }

        private Op link(List<Entry> entries, List<Node> dirs) {
            Entry src = any(entries);
            if (src.node().isDir()) {
                return null;
            }
            long ino = src.node().ino;
            long toDir = any(dirs).ino;
            String nm = name("l");
            return Op.of("link ino " + ino + " as " + Shadow.key(toDir, nm), () -> {
                Attr a = fs.link(ino, toDir, b(nm));
                looked(ino);
                if (a.nlink() != src.node().links + 1) {
                    throw new AssertionError(where + ": link returned nlink " + a.nlink() + ", model has "
                            + (src.node().links + 1));
                }
            }, () -> m.link(ino, toDir, nm));
        }

        private Op unlink(List<Entry> entries) {
            List<Entry> names = entries.stream().filter(e -> !e.node().isDir()).toList();
            if (names.isEmpty()) {
                return null;
            }
            Entry e = any(names);
            long ino = e.node().ino;
            boolean last = e.node().links == 1;
            return Op.of("unlink " + Shadow.key(e.dir(), e.name()) + " (ino " + ino + (last ? ", last link)" : ")"),
                    () -> {
                        fs.unlink(e.dir(), b(e.name()));
                        if (last) {
                            maybeLetGo(ino);
                        }
                    }, () -> m.removeName(e.dir(), e.name()));
        }

        private Op rmdir(List<Entry> entries) {
            List<Entry> empty = entries.stream().filter(e -> e.node().isDir() && e.node().children.isEmpty()).toList();
            if (empty.isEmpty()) {
                return null;
            }
            Entry e = any(empty);
            return Op.of("rmdir " + Shadow.key(e.dir(), e.name()) + " (ino " + e.node().ino + ")", () -> {
                fs.rmdir(e.dir(), b(e.name()));
                Long n = lookups.remove(e.node().ino);
                if (n != null && r.nextBoolean()) {
                    fs.forget(e.node().ino, n);
                }
            }, () -> m.removeName(e.dir(), e.name()));
        }

        private Op fsyncOp(List<Node> files) {
            long ino = any(files).ino;
            boolean dataOnly = r.nextBoolean();
            return Op.of((dataOnly ? "fdatasync" : "fsync") + " ino " + ino, () -> fs.fsync(handle(ino), dataOnly),
                    () -> m.fsynced(ino));
        }

        private Op syncOp() {
            return new Op("sync", null, () -> fs.sync(), () -> { }, 0, 0, null, null, true);
        }

        /** Reads a file back on the live filesystem: exactly the model's content. */
        private Op verify(List<Node> files) {
            Node f = any(files);
            long ino = f.ino;
            byte[] want = f.content.clone();
            return Op.of("read back ino " + ino, () -> {
                Attr a = fs.getattr(ino);
                if (a.size() != want.length) {
                    throw new AssertionError(where + ": ino " + ino + " has size " + a.size() + ", model " + want.length
                            + "\n" + log());
                }
                byte[] got = new byte[want.length + 100];
                int n = fs.read(handle(ino), 0, MemorySegment.ofArray(got));
                int diff = m.firstMismatch(want, Arrays.copyOf(got, n));
                if (n != want.length || diff >= 0) {
                    throw new AssertionError(where + ": ino " + ino + " reads " + n + " bytes, first difference at "
                            + diff + "\n" + log());
                }
            }, () -> { });
        }

        private Op expectedError(List<Entry> entries, List<Node> dirs) {
            switch (r.nextInt(6)) {
                case 0 -> {
                    if (entries.isEmpty()) {
                        return null;
                    }
                    Entry e = any(entries);
                    return Op.of("mkdir existing " + Shadow.key(e.dir(), e.name()) + " must fail EEXIST",
                            expect(EEXIST, () -> fs.mkdir(e.dir(), b(e.name()), 0755, ME)), () -> { });
                }
                case 1 -> {
                    List<Entry> full = entries.stream().filter(e -> e.node().isDir() && !e.node().children.isEmpty())
                            .toList();
                    if (full.isEmpty()) {
                        return null;
                    }
                    Entry e = any(full);
                    return Op.of("rmdir non-empty " + Shadow.key(e.dir(), e.name()) + " must fail ENOTEMPTY",
                            expect(ENOTEMPTY, () -> fs.rmdir(e.dir(), b(e.name()))), () -> { });
                }
                case 2 -> {
                    long d = any(dirs).ino;
                    return Op.of("unlink missing in " + d + " must fail ENOENT",
                            expect(ENOENT, () -> fs.unlink(d, b("missing"))), () -> { });
                }
                case 3 -> {
                    long d = any(dirs).ino;
                    return Op.of("lookup missing in " + d + " must fail ENOENT",
                            expect(ENOENT, () -> fs.lookup(d, b("missing"))), () -> { });
                }
                case 4 -> {
                    List<Entry> files = entries.stream().filter(e -> !e.node().isDir()).toList();
                    if (files.isEmpty()) {
                        return null;
                    }
                    Entry e = any(files);
                    return Op.of("rmdir a non-directory " + Shadow.key(e.dir(), e.name()) + " must fail ENOTDIR",
                            expect(ENOTDIR, () -> fs.rmdir(e.dir(), b(e.name()))), () -> { });
                }
                default -> {
                    List<Entry> ds = entries.stream().filter(e -> e.node().isDir()).toList();
                    if (ds.isEmpty()) {
                        return null;
                    }
                    Entry e = any(ds);
                    return Op.of("unlink a directory " + Shadow.key(e.dir(), e.name()) + " must fail EISDIR",
                            expect(EISDIR, () -> fs.unlink(e.dir(), b(e.name()))), () -> { });
                }
            }
        }

        private Call expect(int errno, Call call) {
            return () -> {
                try {
                    call.run();
                } catch (ErrnoException e) {
                    if (e.errno() == errno) {
                        return;
                    }
                    throw e;
                }
                throw new AssertionError(where + ": expected errno " + errno + ", the call succeeded\n" + log());
            };
        }

        // ---- after the cut -------------------------------------------------------------------

        private AssertionError fail(String what) {
            return new AssertionError(where + ": " + what + "\n" + log());
        }

        private List<DirEntry> readdirAll(long dir, int batch) throws IOException {
            List<DirEntry> out = new ArrayList<>();
            long cookie = 0;
            for (int calls = 0; ; calls++) {
                if (calls > 100_000) {
                    throw fail("readdir of " + dir + " does not end");
                }
                List<DirEntry> got = fs.readdir(dir, cookie, batch);
                if (got.isEmpty()) {
                    return out;
                }
                if (got.size() > batch) {
                    throw fail("readdir of " + dir + " returned " + got.size() + " entries for a batch of " + batch);
                }
                out.addAll(got);
                cookie = got.get(got.size() - 1).nextCookie();
            }
        }

        private byte[] readAll(long ino, long size) throws IOException {
            OpenFile f = fs.open(ino, OpenFile.O_RDONLY);
            try {
                byte[] buf = new byte[(int) size];
                int n = fs.read(f, 0, MemorySegment.ofArray(buf));
                if (n != size) {
                    throw fail("ino " + ino + " of size " + size + " reads " + n + " bytes");
                }
                if (fs.read(f, size, MemorySegment.ofArray(new byte[16])) != 0) {
                    throw fail("ino " + ino + " reads past its size " + size);
                }
                return buf;
            } finally {
                fs.release(f);
            }
        }

        private void recoveredChecks() throws IOException {
            int batch = 1 + r.nextInt(6);
            Map<Long, Attr> attrs = new HashMap<>();
            Map<Long, Long> parentOf = new HashMap<>();
            Map<Long, Integer> subdirs = new HashMap<>();
            Map<Long, Integer> names = new HashMap<>();
            Map<Long, byte[]> targets = new HashMap<>();
            List<Object[]> found = new ArrayList<>();  // {dir, name, ino, type}
            TreeMap<String, String> ns = new TreeMap<>();
            attrs.put(Vfs.ROOT, fs.getattr(Vfs.ROOT));
            parentOf.put(Vfs.ROOT, Vfs.ROOT);
            Deque<Long> todo = new ArrayDeque<>();
            todo.push(Vfs.ROOT);
            while (!todo.isEmpty()) {
                long d = todo.pop();
                List<DirEntry> all = readdirAll(d, batch);
                if (all.size() < 2 || !all.get(0).nameString().equals(".") || all.get(0).ino() != d
                        || !all.get(1).nameString().equals("..") || all.get(1).ino() != parentOf.get(d)) {
                    throw fail("directory " + d + " (parent " + parentOf.get(d) + ") does not start with . and ..: "
                            + all.stream().limit(2).map(e -> e.nameString() + "=" + e.ino()).toList());
                }
                Set<String> seen = new HashSet<>();
                for (DirEntry e : all.subList(2, all.size())) {
                    String name = e.nameString();
                    if (!seen.add(name)) {
                        throw fail("directory " + d + " lists '" + name + "' twice");
                    }
                    Attr a;
                    try {
                        a = fs.getattr(e.ino());
                    } catch (IOException ex) {
                        throw new AssertionError(where + ": entry " + d + "/" + name + " -> ino " + e.ino()
                                + ": getattr fails: " + ex + "\n" + log(), ex);
                    }
                    if (a.type() != e.type()) {
                        throw fail("entry " + d + "/" + name + " says type " + Integer.toOctalString(e.type())
                                + ", its inode " + Integer.toOctalString(a.type()));
                    }
                    Attr l = fs.lookup(d, e.name());
                    fs.forget(l.ino(), 1);
                    if (l.ino() != e.ino()) {
                        throw fail("lookup " + d + "/" + name + " gives ino " + l.ino() + ", readdir " + e.ino());
                    }
                    attrs.put(e.ino(), a);
                    byte[] target = null;
                    if (a.isDirectory()) {
                        if (parentOf.containsKey(e.ino())) {
                            throw fail("directory " + e.ino() + " is reachable twice (" + d + "/" + name + ")");
                        }
                        parentOf.put(e.ino(), d);
                        subdirs.merge(d, 1, Integer::sum);
                        todo.push(e.ino());
                    } else {
                        names.merge(e.ino(), 1, Integer::sum);
                    }
                    if (a.type() == Shadow.LNK) {
                        target = fs.readlink(e.ino());
                        targets.put(e.ino(), target);
                        if (a.size() != target.length) {
                            throw fail("symlink " + e.ino() + " has size " + a.size() + " but a " + target.length
                                    + "-byte target");
                        }
                    }
                    found.add(new Object[] {d, name, e.ino(), a.type()});
                    ns.put(Shadow.key(d, name), Shadow.describe(e.ino(), a.type(), target));
                }
            }
            for (Map.Entry<Long, Attr> e : attrs.entrySet()) {
                Attr a = e.getValue();
                int want = a.isDirectory() ? 2 + subdirs.getOrDefault(e.getKey(), 0) : names.get(e.getKey());
                if (a.nlink() != want) {
                    throw fail("ino " + e.getKey() + " (" + (a.isDirectory() ? "directory" : "file") + ") has nlink "
                            + a.nlink() + " but " + want + " links were found");
                }
            }

            // The namespace is the model's after some prefix that includes the last sync.
            boolean matches = false;
            for (int k = m.floor; k < m.snapshots.size() && !matches; k++) {
                matches = m.snapshots.get(k).equals(ns);
            }
            if (!matches && m.maybe != null) {
                matches = m.maybe.test(ns);
            }
            if (!matches) {
                TreeMap<String, String> last = m.snapshots.get(m.snapshots.size() - 1);
                TreeMap<String, String> floor = m.snapshots.get(m.floor);
                throw fail("the recovered namespace is the state after no prefix of the round's operations from "
                        + m.floor + " (last sync) to " + (m.snapshots.size() - 1) + (m.maybe != null
                        ? " nor after the failed '" + m.maybeWhat + "'" : "")
                        + "\n  against the last state: " + diff(last, ns) + "\n  against the synced state: "
                        + diff(floor, ns));
            }

            // Content: sizes the file had, no foreign bytes, the durable files exactly.
            long dataBlocks = 0;
            Map<Long, byte[]> contents = new HashMap<>();
            for (Map.Entry<Long, Attr> e : attrs.entrySet()) {
                long ino = e.getKey();
                Attr a = e.getValue();
                if (a.isDirectory()) {
                    continue;
                }
                dataBlocks += a.blocks() / 8;
                if (a.type() != Shadow.REG) {
                    continue;
                }
                History h = m.history.get(ino);
                Set<Long> sizes = h == null ? Set.of(0L) : h.sizes;
                if (!sizes.contains(a.size())) {
                    throw fail("ino " + ino + " has size " + a.size() + ", which it never had (sizes: "
                            + new TreeSet<>(sizes) + ")");
                }
                byte[] c = readAll(ino, a.size());
                contents.put(ino, c);
                int bad = m.firstForeignByte(ino, c);
                if (bad >= 0) {
                    throw fail("ino " + ino + " holds byte 0x" + Integer.toHexString(c[bad] & 0xff) + " at offset " + bad
                            + ", never written there (writes: " + (h == null ? "none" : h.writes.stream()
                            .map(w -> "[" + w[0] + ",+" + w[1] + ") gen " + w[2]).toList()) + ")");
                }
                long pages = 0;
                for (int p = 0; p < c.length; p += 4096) {
                    for (int i = p; i < Math.min(c.length, p + 4096); i++) {
                        if (c[i] != 0) {
                            pages++;
                            break;
                        }
                    }
                }
                if (a.blocks() / 8 < pages) {
                    throw fail("ino " + ino + " has data in " + pages + " blocks but st_blocks says " + a.blocks() / 8);
                }
            }
            for (Map.Entry<Long, byte[]> e : m.durable.entrySet()) {
                long ino = e.getKey();
                byte[] want = e.getValue();
                Attr a;
                try {
                    a = fs.getattr(ino);
                } catch (ErrnoException ex) {
                    throw fail("durable (fsynced or synced, untouched since) ino " + ino + " is gone: " + ex);
                }
                if (a.size() != want.length) {
                    throw fail("durable ino " + ino + " has size " + a.size() + ", " + want.length + " when made durable");
                }
                byte[] got = contents.containsKey(ino) ? contents.get(ino) : readAll(ino, a.size());
                int diff = m.firstMismatch(want, got);
                if (diff >= 0) {
                    throw fail("durable ino " + ino + " differs at offset " + diff + ": 0x"
                            + Integer.toHexString(got[diff] & 0xff) + " instead of 0x" + Integer.toHexString(want[diff] & 0xff));
                }
            }

            // Space: the files' blocks are not counted free.
            StatFs s = fs.statfs();
            if (s.freeBlocks() + dataBlocks > rig.freeWhenEmpty) {
                throw fail("statfs: " + s.freeBlocks() + " free + " + dataBlocks + " in files > " + rig.freeWhenEmpty
                        + " free when empty");
            }

            // The recovered state is the next round's starting point.
            m.nodes.keySet().removeIf(ino -> ino != Vfs.ROOT);
            Node root = m.nodes.get(Vfs.ROOT);
            root.children.clear();
            for (Map.Entry<Long, Attr> e : attrs.entrySet()) {
                if (e.getKey() == Vfs.ROOT) {
                    continue;
                }
                Node n = new Node(e.getKey(), e.getValue().type());
                n.parent = parentOf.getOrDefault(e.getKey(), 0L);
                n.target = targets.get(e.getKey());
                byte[] c = contents.get(e.getKey());
                n.content = c == null ? new byte[0] : c;
                n.links = names.getOrDefault(e.getKey(), 0);
                m.nodes.put(e.getKey(), n);
            }
            for (Object[] f : found) {
                m.nodes.get((Long) f[0]).children.put((String) f[1], (Long) f[2]);
            }
        }

        private static String diff(TreeMap<String, String> want, TreeMap<String, String> got) {
            List<String> out = new ArrayList<>();
            for (Map.Entry<String, String> e : want.entrySet()) {
                String g = got.get(e.getKey());
                if (g == null) {
                    out.add("missing " + e.getKey() + " = " + e.getValue());
                } else if (!g.equals(e.getValue())) {
                    out.add(e.getKey() + " = " + g + " instead of " + e.getValue());
                }
            }
            for (Map.Entry<String, String> e : got.entrySet()) {
                if (!want.containsKey(e.getKey())) {
                    out.add("extra " + e.getKey() + " = " + e.getValue());
                }
            }
            return out.isEmpty() ? "equal" : out.toString();
        }
    }
}
