package io.coherentfs.core.dio;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Randomized mixed IO, checked by a model: threads mix buffered reads and writes, direct reads
 * and writes, AIO reads and writes (several in flight), mapped loads and stores, and direct
 * writes whose source is a mapped view, on a few files.
 *
 * <p><b>Model.</b> Each thread owns one 64 KiB region of every file and is its only writer, so the
 * model of a region is exact: a read of its own region, by any path, must return exactly the
 * model. Every write covers whole 512-byte sectors, and every sector written is self-describing
 * (its file offset, the write's generation and the region's tag in a header, a body derived from
 * them). Reads of other threads' regions (buffered reads and mapped loads, which copy a page
 * under its folio lock) are checked loosely: each sector is all zeros (never written) or a
 * well-formed sector of that very offset and region whose generation the owner had issued.
 *
 * <p>Ends with fsync, a full compare, an unmount, a read-only fsck (must be clean), a mount and
 * a full compare again. {@code -Dcoherentfs.stress.ops=N} sets the total operation count (default
 * 12000), {@code -Dcoherentfs.stress.seed=S} the seed; failures name the seed, thread, operation
 * and the thread's last operations.
 */
class DioMixedStressTest {
    private static final int FILES = 3;
    private static final int THREADS = 4;
    private static final int REGION = 64 * 1024;
    private static final int SECTOR = 512;
    private static final int SECTORS = REGION / SECTOR;
    private static final int FILE_SIZE = THREADS * REGION;

    /** One region: its owner's exact model and the highest generation issued for it. */
    static final class Region {
        final byte[] model = new byte[REGION];
        final AtomicInteger issued = new AtomicInteger();
        /** Sectors that a direct write from a view ever filled with a copy of another place's sector. */
        final java.util.concurrent.atomic.AtomicIntegerArray copied = new java.util.concurrent.atomic.AtomicIntegerArray(SECTORS);
        final int tag;

        Region(int tag) {
            this.tag = tag;
        }
    }

    private Region[][] regions; // [file][thread]
    private long[] inos;
    private final AtomicLong opsDone = new AtomicLong();
    /** Set when a worker failed: the others stop, so that nothing runs while the test unmounts. */
    private final java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();

    static void fillSector(byte[] dst, int at, long fileOffset, int gen, int tag) {
        ByteBuffer b = ByteBuffer.wrap(dst, at, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(fileOffset).putInt(gen).putInt(tag);
        long x = fileOffset * 0x9E3779B97F4A7C15L ^ (gen + 1L) * 0xC2B2AE3D27D4EB4FL ^ tag;
        for (int i = 16; i < SECTOR; i += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            b.putLong(x);
        }
    }

    /**
     * Null if the sector at {@code at} of {@code got} is fine for {@code fileOffset} of thread
     * {@code owner}'s region {@code r}, else why not. A sector that a direct write from a view
     * filled may hold a copy of any well-formed sector of the same owner's regions.
     */
    String checkLoose(byte[] got, int at, long fileOffset, Region r, int owner) {
        int index = (int) (fileOffset - (long) owner * REGION) / SECTOR;
        if (r.copied.get(index) == 0) {
            return checkSector(got, at, fileOffset, r, r.issued.get());
        }
        ByteBuffer b = ByteBuffer.wrap(got, at, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        long off = b.getLong();
        b.getInt();
        int tag = b.getInt();
        int f = (tag - 1) / 16;
        int t = (tag - 1) % 16;
        if (tag < 1 || f >= FILES || t != owner || off < (long) owner * REGION || off >= (long) (owner + 1) * REGION) {
            String why = checkSector(got, at, fileOffset, r, r.issued.get()); // zeros, or a sector of this place
            return why == null ? null : why + " (a view copy's sector may also be any sector of the owner's regions)";
        }
        return checkSector(got, at, off, regions[f][t], regions[f][t].issued.get());
    }

    /** Null if the sector at {@code at} of {@code got} is fine for {@code fileOffset} in {@code r}, else why not. */
    static String checkSector(byte[] got, int at, long fileOffset, Region r, int maxGen) {
        boolean zero = true;
        for (int i = at; i < at + SECTOR; i++) {
            if (got[i] != 0) {
                zero = false;
                break;
            }
        }
        if (zero) {
            return null;
        }
        ByteBuffer b = ByteBuffer.wrap(got, at, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        long off = b.getLong();
        int gen = b.getInt();
        int tag = b.getInt();
        if (off != fileOffset || tag != r.tag || gen < 1 || gen > maxGen) {
            return "sector at " + fileOffset + " has header offset " + off + " gen " + gen + " tag " + tag
                    + " (region tag " + r.tag + ", highest issued gen " + maxGen + ")";
        }
        byte[] expected = new byte[SECTOR];
        fillSector(expected, 0, off, gen, tag);
        if (!Arrays.equals(expected, 0, SECTOR, got, at, at + SECTOR)) {
            return "sector at " + fileOffset + " (gen " + gen + ") is torn or corrupt";
        }
        return null;
    }

    @Test
    void mixedIoAgainstAModel() throws Exception {
        long seed = Long.getLong("coherentfs.stress.seed", 0xD10_5EEDL);
        int totalOps = Integer.getInteger("coherentfs.stress.ops", 12_000);
        long started = System.nanoTime();
        try (DioTestRig rig = new DioTestRig("stress", 256L << 20, false)) {
            inos = new long[FILES];
            regions = new Region[FILES][THREADS];
            for (int f = 0; f < FILES; f++) {
                inos[f] = rig.create("file" + f);
                for (int t = 0; t < THREADS; t++) {
                    regions[f][t] = new Region(f * 16 + t + 1);
                }
                if (f > 0) {
                    OpenFile o = rig.open(inos[f]);
                    rig.fs.setattr(inos[f], SetAttr.size(FILE_SIZE)); // holes: unwritten extents and delalloc
                    rig.fs.release(o);
                } else {
                    OpenFile o = rig.open(inos[f]);
                    rig.fs.write(o, 0, MemorySegment.ofArray(new byte[FILE_SIZE])); // written zeros
                    rig.fs.fsync(o, false);
                    rig.fs.release(o);
                }
            }
            List<CompletableFuture<Void>> workers = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                Worker w = new Worker(rig, t, new Random(seed * 1_000_003L + t), seed, totalOps / THREADS);
                workers.add(DioTestRig.async("stress-" + t, () -> {
                    w.run();
                    return null;
                }));
            }
            Throwable failure = null;
            for (CompletableFuture<Void> w : workers) {
                try {
                    w.get(120, java.util.concurrent.TimeUnit.SECONDS);
                } catch (java.util.concurrent.TimeoutException e) {
                    rig.hung = true;
                    throw new AssertionError("hang: a stress thread did not finish (seed " + seed + ", "
                            + opsDone.get() + " ops done)", e);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (failure == null) {
                        failure = e.getCause();
                    }
                }
            }
            if (failure != null) {
                throw failure instanceof AssertionError a ? a
                        : new AssertionError("seed " + seed + ": a stress thread failed", failure);
            }
            compareAll(rig, seed, "after the run");
            for (long ino : inos) {
                OpenFile o = rig.open(ino);
                rig.fs.fsync(o, false);
                rig.fs.release(o);
            }
            rig.remount("stress seed " + seed); // unmount, read-only fsck (clean), mount
            compareAll(rig, seed, "after remount");
            rig.fs.close();
            rig.fs = null;
            rig.assertFsckClean("stress seed " + seed + ", final");
        }
        System.out.printf("DioMixedStressTest: seed %d, %d ops in %d ms%n", seed, opsDone.get(),
                (System.nanoTime() - started) / 1_000_000);
    }

    private void compareAll(DioTestRig rig, long seed, String when) throws Exception {
        for (int f = 0; f < FILES; f++) {
            OpenFile o = rig.open(inos[f]);
            byte[] all = rig.readBuffered(o, 0, FILE_SIZE + PAGE);
            OpenFile d = rig.openDirect(inos[f]);
            byte[] direct = rig.readDirect(d, 0, FILE_SIZE + PAGE);
            rig.fs.release(o);
            rig.fs.release(d);
            assertThat(all.length).as("seed " + seed + " " + when + ": size of file " + f).isEqualTo(FILE_SIZE);
            for (int t = 0; t < THREADS; t++) {
                byte[] model = regions[f][t].model;
                assertThat(Arrays.copyOfRange(all, t * REGION, (t + 1) * REGION))
                        .as("seed %d %s: file %d region %d (buffered)", seed, when, f, t).isEqualTo(model);
                assertThat(Arrays.copyOfRange(direct, t * REGION, (t + 1) * REGION))
                        .as("seed %d %s: file %d region %d (direct)", seed, when, f, t).isEqualTo(model);
            }
        }
    }

    /** One thread's operations. */
    private final class Worker {
        final DioTestRig rig;
        final int me;
        final Random r;
        final long seed;
        final int ops;
        final OpenFile[] buf = new OpenFile[FILES];
        final OpenFile[] dio = new OpenFile[FILES];
        final MappedView[] view = new MappedView[FILES];
        final ArrayDeque<String> recent = new ArrayDeque<>();
        final MemorySegment scratch;
        int op;

        Worker(DioTestRig rig, int me, Random r, long seed, int ops) {
            this.rig = rig;
            this.me = me;
            this.r = r;
            this.seed = seed;
            this.ops = ops;
            this.scratch = rig.buffer(REGION + PAGE);
        }

        void run() throws Exception {
            for (int f = 0; f < FILES; f++) {
                buf[f] = rig.open(inos[f]);
                dio[f] = rig.openDirect(inos[f]);
                view[f] = rig.fs.map(buf[f]);
            }
            try {
                for (op = 0; op < ops && !stop.get(); op++) {
                    try {
                        step();
                    } catch (Throwable t) {
                        stop.set(true);
                        throw t;
                    }
                    opsDone.incrementAndGet();
                }
            } finally {
                for (int f = 0; f < FILES; f++) {
                    view[f].close();
                    rig.fs.release(buf[f]);
                    rig.fs.release(dio[f]);
                }
            }
        }

        void note(String s) {
            recent.addLast(op + ": " + s);
            if (recent.size() > 40) {
                recent.removeFirst();
            }
        }

        AssertionError fail(String what) {
            return new AssertionError("seed " + seed + ", thread " + me + ", op " + op + ": " + what
                    + "\nlast operations of this thread:\n  " + String.join("\n  ", recent));
        }

        /** A random run of sectors inside my region: {first sector, count}; page-aligned with probability {@code aligned}. */
        int[] range(double aligned, int maxSectors) {
            if (r.nextDouble() < aligned) {
                int pages = 1 + r.nextInt(Math.max(1, maxSectors / 8));
                int first = r.nextInt(REGION / PAGE - pages + 1);
                return new int[] {first * 8, pages * 8};
            }
            int n = 1 + r.nextInt(maxSectors);
            return new int[] {r.nextInt(SECTORS - n + 1), n};
        }

        /** New self-describing data for sectors {@code [s, s+n)} of my region in file {@code f}. */
        byte[] data(int f, int s, int n) {
            Region reg = regions[f][me];
            int gen = reg.issued.incrementAndGet();
            byte[] b = new byte[n * SECTOR];
            for (int i = 0; i < n; i++) {
                fillSector(b, i * SECTOR, fileOffset(s + i), gen, reg.tag);
            }
            return b;
        }

        long fileOffset(int sector) {
            return (long) me * REGION + (long) sector * SECTOR;
        }

        void applied(int f, int s, byte[] b) {
            System.arraycopy(b, 0, regions[f][me].model, s * SECTOR, b.length);
        }

        void step() throws Exception {
            int f = r.nextInt(FILES);
            int kind = r.nextInt(100);
            if (kind < 14) {
                int[] g = range(0.3, 24);
                byte[] b = data(f, g[0], g[1]);
                note("buffered write f" + f + " @" + fileOffset(g[0]) + "+" + b.length);
                rig.fs.write(buf[f], fileOffset(g[0]), MemorySegment.ofArray(b));
                applied(f, g[0], b);
            } else if (kind < 28) {
                int[] g = range(0.5, 32);
                byte[] b = data(f, g[0], g[1]);
                note("direct write f" + f + " @" + fileOffset(g[0]) + "+" + b.length);
                MemorySegment src = scratch.asSlice(0, b.length);
                MemorySegment.copy(b, 0, src, ValueLayout.JAVA_BYTE, 0, b.length);
                assertThat(rig.fs.write(dio[f], fileOffset(g[0]), src)).isEqualTo(b.length);
                applied(f, g[0], b);
            } else if (kind < 38) {
                aioBatch(f);
            } else if (kind < 47) {
                int[] g = range(0.3, 16);
                byte[] b = data(f, g[0], g[1]);
                note("mapped store f" + f + " @" + fileOffset(g[0]) + "+" + b.length);
                view[f].store(fileOffset(g[0]), MemorySegment.ofArray(b));
                applied(f, g[0], b);
            } else if (kind < 52) {
                // a direct write whose source is a view of my region of another file (or of this one, disjoint)
                int sf = r.nextInt(FILES);
                int pages = 1 + r.nextInt(4);
                int dst = r.nextInt(REGION / PAGE - pages + 1);
                int src = r.nextInt(REGION / PAGE - pages + 1);
                if (sf == f && Math.abs(dst - src) < pages) {
                    src = dst; // the same range of the same file: a no-op write
                }
                byte[] b = Arrays.copyOfRange(regions[sf][me].model, src * PAGE, (src + pages) * PAGE);
                boolean aio = r.nextBoolean();
                note((aio ? "aio" : "direct") + " write f" + f + " page " + dst + " <- view f" + sf + " page " + src
                        + " x" + pages);
                for (int k = dst * 8; k < (dst + pages) * 8; k++) {
                    regions[f][me].copied.set(k, 1); // before the write: a reader may see it any time now
                }
                long at = (long) me * REGION + (long) dst * PAGE;
                long from = (long) me * REGION + (long) src * PAGE;
                int n = aio ? rig.guard(rig.fs.aioWrite(dio[f], at, view[sf], from, (long) pages * PAGE)
                        .toCompletableFuture(), "an AIO write from a view")
                        : rig.fs.write(dio[f], at, view[sf], from, (long) pages * PAGE);
                assertThat(n).isEqualTo(b.length);
                applied(f, dst * 8, b);
            } else if (kind < 78) {
                readMine(f);
            } else if (kind < 98) {
                readOthers(f);
            } else {
                note("fsync f" + f);
                rig.fs.fsync(buf[f], r.nextBoolean());
            }
        }

        void aioBatch(int f) throws Exception {
            int n = 1 + r.nextInt(4);
            boolean[] used = new boolean[SECTORS];
            List<CompletableFuture<Integer>> inFlight = new ArrayList<>();
            List<int[]> ranges = new ArrayList<>();
            List<byte[]> datas = new ArrayList<>();
            StringBuilder s = new StringBuilder("aio batch f" + f + ":");
            int scratchAt = 0;
            for (int i = 0; i < n; i++) {
                int[] g = range(0.8, 16);
                boolean free = true;
                for (int k = g[0]; k < g[0] + g[1]; k++) {
                    free &= !used[k];
                }
                if (!free || scratchAt + g[1] * SECTOR > REGION) {
                    continue;
                }
                for (int k = g[0]; k < g[0] + g[1]; k++) {
                    used[k] = true;
                }
                byte[] b = data(f, g[0], g[1]);
                MemorySegment src = scratch.asSlice(scratchAt, b.length);
                scratchAt += (b.length + PAGE - 1) / PAGE * PAGE;
                MemorySegment.copy(b, 0, src, ValueLayout.JAVA_BYTE, 0, b.length);
                s.append(" @").append(fileOffset(g[0])).append('+').append(b.length);
                inFlight.add(rig.fs.aioWrite(dio[f], fileOffset(g[0]), src).toCompletableFuture());
                ranges.add(g);
                datas.add(b);
            }
            note(s.toString());
            if (r.nextBoolean()) {
                readOthers(r.nextInt(FILES)); // something else while mine are in flight
            }
            for (int i = 0; i < inFlight.size(); i++) {
                assertThat(rig.guard(inFlight.get(i), "an AIO write (seed " + seed + ")")).isEqualTo(datas.get(i).length);
                applied(f, ranges.get(i)[0], datas.get(i));
            }
        }

        void readMine(int f) throws Exception {
            int[] g = range(0.5, SECTORS);
            long at = fileOffset(g[0]);
            int len = g[1] * SECTOR;
            int how = r.nextInt(4);
            byte[] got;
            switch (how) {
                case 0 -> got = rig.readBuffered(buf[f], at, len);
                case 1 -> {
                    MemorySegment d = scratch.asSlice(0, len);
                    assertThat(rig.fs.read(dio[f], at, d)).isEqualTo(len);
                    got = d.toArray(ValueLayout.JAVA_BYTE);
                }
                case 2 -> {
                    MemorySegment d = scratch.asSlice(0, len);
                    assertThat(rig.guard(rig.fs.aioRead(dio[f], at, d).toCompletableFuture(), "aioRead")).isEqualTo(len);
                    got = d.toArray(ValueLayout.JAVA_BYTE);
                }
                default -> {
                    got = new byte[len];
                    view[f].load(at, MemorySegment.ofArray(got));
                }
            }
            String[] names = {"buffered read", "direct read", "aio read", "mapped load"};
            note(names[how] + " of mine f" + f + " @" + at + "+" + len);
            byte[] model = regions[f][me].model;
            int first = Arrays.mismatch(got, Arrays.copyOfRange(model, g[0] * SECTOR, g[0] * SECTOR + len));
            if (first >= 0) {
                throw fail(names[how] + " of my own region of file " + f + " at " + at + "+" + len
                        + " differs from the model at file offset " + (at + first) + " (sector check: "
                        + checkLoose(got, first / SECTOR * SECTOR, at + first / SECTOR * SECTOR, regions[f][me], me)
                        + ")");
            }
        }

        void readOthers(int f) throws Exception {
            int other = r.nextInt(THREADS);
            int pages = 1 + r.nextInt(16);
            int first = r.nextInt(REGION / PAGE - pages + 1);
            long at = (long) other * REGION + (long) first * PAGE;
            boolean mapped = r.nextBoolean();
            byte[] got = new byte[pages * PAGE];
            if (mapped) {
                view[f].load(at, MemorySegment.ofArray(got));
            } else {
                assertThat(rig.fs.read(buf[f], at, MemorySegment.ofArray(got))).isEqualTo(got.length);
            }
            note((mapped ? "mapped load" : "buffered read") + " of thread " + other + "'s region f" + f + " @" + at
                    + "+" + got.length);
            Region reg = regions[f][other];
            for (int s = 0; s < got.length; s += SECTOR) {
                String why = checkLoose(got, s, at + s, reg, other);
                if (why != null) {
                    throw fail("reading thread " + other + "'s region of file " + f + ": " + why);
                }
            }
        }
    }
}
