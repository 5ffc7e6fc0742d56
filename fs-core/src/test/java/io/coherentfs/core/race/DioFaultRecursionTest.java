package io.coherentfs.core.race;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.async;
import static io.coherentfs.core.dio.DioTestRig.differing;
import static io.coherentfs.core.dio.DioTestRig.pattern;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.dio.DioTestRig;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.CoherenceConfig.Switch;
import io.coherentfs.core.sync.FaultGuard;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/**
 * Seed 3 (M3: the add lock and fault-recursion detection): direct writes whose source is a
 * {@link MappedView} — of the file being written (overlapping the written range or not) or of a
 * second file, in both lock orders (inode numbers ascending is the right order) — never deadlock
 * and never leave stale data; the recursion and retry counters move where they must.
 *
 * <p>Two files, {@code lo} (the lower inode number) and {@code hi}, of {@value #PAGES} pages, whose
 * initial contents are written with direct writes so that nothing is cached (every page of a
 * source view faults). Every operation finishes within a bounded wait, else the test fails with
 * "hang"; every result is compared with a model of the files.
 *
 * <p>The negative run turns M1, M2 and M3 off and writes pages 4-7 from a view of pages 5-8 of
 * the same file: the copy faults pages 5-8 in with their pre-write data and nothing invalidates
 * them after the write, so a buffered read of pages 5-7 returns stale bytes.
 */
class DioFaultRecursionTest {
    static final int PAGES = 64;
    static final int FILE = PAGES * PAGE;
    static final String BEFORE_SUBMIT = "dio-write.before-submit";

    /** Two files with direct-written (uncached) contents and their model. */
    static final class Pair implements AutoCloseable {
        final DioTestRig rig;
        final long lo, hi;
        final OpenFile loBuf, hiBuf, loDio, hiDio;
        final MappedView loView, hiView;
        final byte[] loModel = pattern(11, FILE), hiModel = pattern(12, FILE);

        Pair(DioTestRig rig) throws Exception {
            this.rig = rig;
            lo = rig.create("lo");
            hi = rig.create("hi");
            assertThat(lo).as("inode order").isLessThan(hi);
            loBuf = rig.open(lo);
            hiBuf = rig.open(hi);
            loDio = rig.openDirect(lo);
            hiDio = rig.openDirect(hi);
            rig.fs.write(loDio, 0, rig.buffer(loModel));
            rig.fs.write(hiDio, 0, rig.buffer(hiModel));
            loView = rig.fs.map(loBuf);
            hiView = rig.fs.map(hiBuf);
        }

        OpenFile dio(boolean high) {
            return high ? hiDio : loDio;
        }

        OpenFile buf(boolean high) {
            return high ? hiBuf : loBuf;
        }

        MappedView view(boolean high) {
            return high ? hiView : loView;
        }

        byte[] model(boolean high) {
            return high ? hiModel : loModel;
        }

        /**
         * A direct write of {@code pages} pages at page {@code dst} of one file from a view of page
         * {@code src} of one file; sync or AIO. Updates the model on success.
         */
        int viewWrite(boolean dstHigh, long dst, boolean srcHigh, long src, int pages, boolean aio) throws Exception {
            byte[] expected = Arrays.copyOfRange(model(srcHigh), (int) (src * PAGE), (int) ((src + pages) * PAGE));
            CompletionStage<Integer> stage = aio
                    ? rig.fs.aioWrite(dio(dstHigh), dst * PAGE, view(srcHigh), src * PAGE, (long) pages * PAGE)
                    : CompletableFuture.completedFuture(
                            rig.fs.write(dio(dstHigh), dst * PAGE, view(srcHigh), src * PAGE, (long) pages * PAGE));
            int n = rig.guard(stage.toCompletableFuture(), "a direct write from a mapped view");
            System.arraycopy(expected, 0, model(dstHigh), (int) (dst * PAGE), expected.length);
            return n;
        }

        /** Bytes of {@code [page, page + pages)} a buffered read returns different from the model. */
        int staleBuffered(boolean high, long page, int pages) throws Exception {
            byte[] got = rig.readBuffered(buf(high), page * PAGE, pages * PAGE);
            return differing(Arrays.copyOfRange(model(high), (int) (page * PAGE), (int) ((page + pages) * PAGE)), got);
        }

        /** Bytes of the whole file a direct read (the device) returns different from the model. */
        int wrongOnDevice(boolean high) throws Exception {
            MemorySegment back = rig.buffer(FILE);
            rig.fs.read(dio(high), 0, back);
            return differing(model(high), back.toArray(ValueLayout.JAVA_BYTE));
        }

        @Override
        public void close() throws Exception {
            loView.close();
            hiView.close();
            for (OpenFile f : List.of(loBuf, hiBuf, loDio, hiDio)) {
                rig.fs.release(f);
            }
        }
    }

    /**
     * @param staleBytes bytes of the written range a buffered read returned different from the model
     * @param wrongOnDevice bytes of the file the device holds different from the model
     */
    record Outcome(int staleBytes, int wrongOnDevice, long detections, long retries) {}

    /** Pages 4-7 of {@code lo} from a view of its pages 5-8 (overlapping) or 40-43 (not). */
    private Outcome sameFile(String name, CoherenceConfig coherence, boolean overlapping, boolean aio) throws Exception {
        try (DioTestRig rig = DioTestRig.forRace(name, coherence); Pair p = new Pair(rig)) {
            p.viewWrite(false, 4, false, overlapping ? 5 : 40, 4, aio);
            int stale = p.staleBuffered(false, 0, PAGES);
            return new Outcome(stale, p.wrongOnDevice(false), rig.counter("coherentfs.dio.recursion.detections"),
                    rig.counter("coherentfs.dio.retries"));
        }
    }

    @Test
    void aDirectWriteFromAnOverlappingViewOfItsOwnFile() throws Exception {
        for (boolean aio : new boolean[] {false, true}) {
            Outcome o = sameFile("s3-same-overlap-" + aio, CoherenceConfig.DEFAULTS, true, aio);
            assertThat(o.staleBytes()).as("aio=" + aio + " stale bytes: " + o).isZero();
            assertThat(o.wrongOnDevice()).as("aio=" + aio + " " + o).isZero();
            assertThat(o.detections()).as("the fault on its own mapping was detected: " + o).isPositive();
        }
    }

    @Test
    void aDirectWriteFromADisjointViewOfItsOwnFile() throws Exception {
        for (boolean aio : new boolean[] {false, true}) {
            Outcome o = sameFile("s3-same-disjoint-" + aio, CoherenceConfig.DEFAULTS, false, aio);
            assertThat(o.staleBytes()).as("aio=" + aio + " stale bytes: " + o).isZero();
            assertThat(o.wrongOnDevice()).as("aio=" + aio + " " + o).isZero();
            assertThat(o.detections()).as("any fault on its own mapping is a recursion: " + o).isPositive();
        }
    }

    /** The negative run: M1, M2 and M3 off; the pages faulted in from the source keep pre-write data. */
    @Test
    void withM1M2M3OffPagesFaultedFromTheSourceStayStale() throws Exception {
        CoherenceConfig off = CoherenceConfig.withOff(
                Set.of(Switch.DEFERRED_COMPLETION, Switch.POST_WRITE_INVALIDATION, Switch.PAGECACHE_ADD_LOCK));
        for (boolean aio : new boolean[] {false, true}) {
            Outcome o = sameFile("s3-negative-" + aio, off, true, aio);
            assertThat(o.wrongOnDevice()).as("the device is right: " + o).isZero();
            assertThat(o.detections()).as("no add lock, no detection").isZero();
            // pages 5, 6 and 7 were faulted in with their old contents and never invalidated
            assertThat(o.staleBytes()).as("aio=" + aio + ": stale bytes in pages 5-7: " + o).isEqualTo(3 * PAGE);
        }
    }

    /** A view of the other file, in both lock orders, sync and AIO, no contention. */
    @Test
    void directWritesFromAViewOfTheOtherFileInBothOrders() throws Exception {
        try (DioTestRig rig = DioTestRig.forRace("s3-other", CoherenceConfig.DEFAULTS); Pair p = new Pair(rig)) {
            for (boolean aio : new boolean[] {false, true}) {
                int base = aio ? 32 : 0;
                p.viewWrite(true, base, false, base + 8, 4, aio);       // hi from lo: wrong order (tryLock)
                p.viewWrite(false, base + 16, true, base + 20, 4, aio); // lo from hi: right order
                p.viewWrite(true, base + 4, true, base + 10, 2, aio);   // hi from hi, disjoint
            }
            assertThat(p.staleBuffered(false, 0, PAGES)).isZero();
            assertThat(p.staleBuffered(true, 0, PAGES)).isZero();
            assertThat(p.wrongOnDevice(false)).isZero();
            assertThat(p.wrongOnDevice(true)).isZero();
        }
    }

    /**
     * The ABBA case, driven: C writes {@code lo} and is stopped before its submission, holding
     * lo's BLOCK side. A writes {@code hi} from a view of lo: its fault on lo is in the wrong
     * order and lo is blocked, so A drops hi's BLOCK and waits ({@code fault-guard.locks-dropped}).
     * B writes {@code lo} (sharing its BLOCK side with C) from a view of hi: its fault on hi, in
     * the right order, must get hi's ADD side now — had A kept hi blocked while waiting for lo,
     * A and B would wait for each other forever. Then C is released; everything completes, A
     * after a retry, and A's data is what C wrote (A copied its source after C completed).
     */
    @Test
    void aWrongOrderFaultDropsItsLockSoTheOtherWriterProgresses() throws Exception {
        try (DioTestRig rig = DioTestRig.forRace("s3-abba", CoherenceConfig.DEFAULTS); Pair p = new Pair(rig)) {
            byte[] cData = pattern(13, 2 * PAGE);
            MemorySegment cSrc = rig.buffer(cData);
            rig.race.arm(BEFORE_SUBMIT);
            CompletableFuture<Integer> c = async("C", () -> rig.fs.write(p.loDio, 0, cSrc));
            rig.race.await(BEFORE_SUBMIT);
            rig.race.arm(FaultGuard.RACE_LOCKS_DROPPED, () -> { });
            CompletableFuture<Integer> a = async("A", () -> rig.fs.write(p.hiDio, 0, p.loView, 0, 2L * PAGE));
            rig.race.await(FaultGuard.RACE_LOCKS_DROPPED);
            rig.race.arm("folio-mapping.before-insert", () -> { });
            CompletableFuture<Integer> b = async("B", () -> rig.fs.write(p.loDio, 8L * PAGE, p.hiView, 4L * PAGE, 2L * PAGE));
            rig.race.await("folio-mapping.before-insert"); // B faults hi in while A waits for lo
            rig.race.release(BEFORE_SUBMIT);
            assertThat(rig.guard(c, "C")).isEqualTo(2 * PAGE);
            assertThat(rig.guard(b, "B (fault on hi in the right order)")).isEqualTo(2 * PAGE);
            assertThat(rig.guard(a, "A (fault on lo in the wrong order)")).isEqualTo(2 * PAGE);
            System.arraycopy(cData, 0, p.loModel, 0, cData.length);
            System.arraycopy(p.hiModel, 4 * PAGE, p.loModel, 8 * PAGE, 2 * PAGE);
            System.arraycopy(cData, 0, p.hiModel, 0, cData.length);
            assertThat(rig.counter("coherentfs.dio.retries")).as("A retried after dropping its lock").isPositive();
            assertThat(p.staleBuffered(false, 0, PAGES)).as("lo").isZero();
            assertThat(p.staleBuffered(true, 0, PAGES)).as("hi").isZero();
            assertThat(p.wrongOnDevice(false)).isZero();
            assertThat(p.wrongOnDevice(true)).isZero();
        }
    }

    /** A source that faults past the end fails the write with EFAULT and leaves nothing blocked. */
    @Test
    void aSourceFaultingPastEofFailsAndReleasesTheAddLock() throws Exception {
        try (DioTestRig rig = DioTestRig.forRace("s3-efault", CoherenceConfig.DEFAULTS); Pair p = new Pair(rig)) {
            for (boolean srcHigh : new boolean[] {false, true}) {
                assertThatThrownBy(() -> rig.fs.write(p.loDio, 0, p.view(srcHigh), (PAGES - 1L) * PAGE, 2L * PAGE))
                        .isInstanceOf(ErrnoException.class)
                        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(14));
                assertThatThrownBy(() -> rig.fs.aioWrite(p.loDio, 0, p.view(srcHigh), (long) FILE, PAGE))
                        .isInstanceOf(ErrnoException.class);
            }
            // nothing stays blocked: a read that must add pages, a truncate that waits for direct IO
            CompletableFuture<Integer> read = async("reader", () -> p.staleBuffered(false, 0, PAGES));
            assertThat(rig.guard(read, "a buffered read after the failed writes")).isZero();
            CompletableFuture<Object> trunc = async("truncate", () -> rig.fs.setattr(p.lo,
                    io.coherentfs.core.vfs.SetAttr.size(FILE)));
            rig.guard(trunc, "a setattr(size) after the failed writes");
        }
    }

    private static final long[] SEEDS = {0x5eed3L, 42L};

    /**
     * Several threads at random: each owns a 16-page region of both files and writes it with sync
     * and AIO direct writes whose source is a view of its own regions (same file overlapping,
     * same file disjoint, the other file) or memory, checking each result with a buffered read;
     * meanwhile the threads fault in and read other threads' regions (adding pages while others
     * block adds). No hang, the model holds, and recursion detections happened.
     */
    @Test
    void randomViewSourcesFromSeveralThreads() throws Exception {
        for (long seed : SEEDS) {
            randomRun(seed, Integer.getInteger("coherentfs.recursion.ops", 100));
        }
    }

    private void randomRun(long seed, int opsPerThread) throws Exception {
        int threads = 4;
        int region = 16;
        try (DioTestRig rig = DioTestRig.forRace("s3-random-" + seed, CoherenceConfig.DEFAULTS); Pair p = new Pair(rig)) {
            List<CompletableFuture<String>> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int me = t;
                Random r = new Random(seed * 31 + t);
                workers.add(async("mixer-" + t, () -> {
                    StringBuilder log = new StringBuilder();
                    for (int i = 0; i < opsPerThread; i++) {
                        int base = me * region;
                        boolean dstHigh = r.nextBoolean();
                        boolean aio = r.nextBoolean();
                        int kind = r.nextInt(5);
                        String op;
                        int pages;
                        long dst;
                        switch (kind) {
                            case 0 -> { // same file, overlapping, shifted by 1-3 pages either way
                                int shift = (1 + r.nextInt(3)) * (r.nextBoolean() ? 1 : -1);
                                pages = 1 + r.nextInt(region - 3 - 1);
                                int lowest = Math.max(0, -shift);
                                dst = base + lowest + r.nextInt(region - pages - Math.abs(shift) + 1);
                                op = "dst " + dst + " <- same+" + shift;
                                p.viewWrite(dstHigh, dst, dstHigh, dst + shift, pages, aio);
                            }
                            case 1 -> { // same file, disjoint halves of the region
                                pages = 1 + r.nextInt(region / 2);
                                boolean low = r.nextBoolean();
                                dst = base + (low ? 0 : region / 2) + r.nextInt(region / 2 - pages + 1);
                                long src = base + (low ? region / 2 : 0) + r.nextInt(region / 2 - pages + 1);
                                op = "dst " + dst + " <- same@" + src;
                                p.viewWrite(dstHigh, dst, dstHigh, src, pages, aio);
                            }
                            case 2 -> { // the other file's region of this thread
                                pages = 1 + r.nextInt(region);
                                dst = base + r.nextInt(region - pages + 1);
                                long src = base + r.nextInt(region - pages + 1);
                                op = "dst " + dst + " <- other@" + src;
                                p.viewWrite(dstHigh, dst, !dstHigh, src, pages, aio);
                            }
                            case 3 -> { // memory (sometimes sub-page: read-modify-write under the exclusive lock)
                                int sectors = 1 + r.nextInt(16);
                                long at = (long) base * PAGE + 512L * r.nextInt(region * 8 - sectors + 1);
                                byte[] data = new byte[sectors * 512];
                                r.nextBytes(data);
                                op = "memory " + at + "+" + data.length;
                                MemorySegment src = rig.buffer(data);
                                CompletionStage<Integer> s = aio ? rig.fs.aioWrite(p.dio(dstHigh), at, src)
                                        : CompletableFuture.completedFuture(rig.fs.write(p.dio(dstHigh), at, src));
                                rig.guard(s.toCompletableFuture(), "a direct write from memory");
                                System.arraycopy(data, 0, p.model(dstHigh), (int) at, data.length);
                                pages = 0;
                                dst = -1;
                            }
                            default -> { // add pages of another thread's region, by fault or read
                                int other = r.nextInt(threads);
                                long page = (long) other * region + r.nextInt(region);
                                byte[] sink = new byte[PAGE];
                                if (r.nextBoolean()) {
                                    p.view(dstHigh).load(page * PAGE, MemorySegment.ofArray(sink));
                                } else {
                                    rig.fs.read(p.buf(dstHigh), page * PAGE, MemorySegment.ofArray(sink));
                                }
                                op = "touch " + page;
                                pages = 0;
                                dst = -1;
                            }
                        }
                        log.append(i).append(": ").append(dstHigh ? "hi " : "lo ").append(aio ? "aio " : "sync ")
                                .append(op).append('\n');
                        int stale = p.staleBuffered(dstHigh, base, region);
                        if (stale != 0) {
                            throw new AssertionError("seed " + seed + " thread " + me + " op " + i + " (" + op
                                    + "): " + stale + " stale bytes in its region\n" + log);
                        }
                    }
                    return log.toString();
                }));
            }
            for (CompletableFuture<String> w : workers) {
                rig.guard(w, "a mixer thread (seed " + seed + ")");
            }
            assertThat(p.staleBuffered(false, 0, PAGES)).as("seed " + seed).isZero();
            assertThat(p.staleBuffered(true, 0, PAGES)).as("seed " + seed).isZero();
            assertThat(p.wrongOnDevice(false)).as("seed " + seed).isZero();
            assertThat(p.wrongOnDevice(true)).as("seed " + seed).isZero();
            assertThat(rig.counter("coherentfs.dio.recursion.detections")).as("seed " + seed).isPositive();
            System.out.printf("DioFaultRecursionTest seed %d: %d recursion detections, %d retries, %d block waits%n",
                    seed, rig.counter("coherentfs.dio.recursion.detections"), rig.counter("coherentfs.dio.retries"),
                    rig.counter("coherentfs.addlock.block.waits"));
        }
    }
}
