package io.coherentfs.core.alloc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.error.ErrnoException.NoSpaceException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.statistics.Statistics;

/**
 * Random programs of allocate / free / reserve / extend / release / allocate-against-reservation /
 * commit / checkpoint / remount against a model made of {@link BitSet}s. Every commit writes the
 * dirty bitmap blocks to a real image and reloads the region to compare; remount drops all
 * in-memory state (pending frees are then free, reservations gone), as a clean unmount would.
 */
class AllocatorModelTest {
    /** 3 bitmap blocks, the last partial; small enough that ENOSPC happens. */
    static final int BLOCKS = 70_000;

    /** The model. */
    static final class Model {
        final BitSet used = new BitSet(BLOCKS);          // newest bitmap
        final BitSet pending = new BitSet(BLOCKS);       // freed, waiting for checkpoint
        final TreeMap<Long, List<Extent>> pendingBySeq = new TreeMap<>();
        final Map<Reservation, Long> reservations = new HashMap<>();
        final List<Extent> live = new ArrayList<>();
        long sequence = 1;        // the running transaction
        long lastCommitted = 0;

        long reserved() {
            return reservations.values().stream().mapToLong(Long::longValue).sum();
        }

        long allocatable() {
            return BLOCKS - used.cardinality() - pending.cardinality();
        }

        /** Longest run of blocks neither used nor pending. */
        long largestRun() {
            BitSet blocked = (BitSet) used.clone();
            blocked.or(pending);
            long best = 0;
            for (int s = blocked.nextClearBit(0); s < BLOCKS; ) {
                int e = blocked.nextSetBit(s);
                if (e < 0) {
                    e = BLOCKS;
                }
                best = Math.max(best, e - s);
                s = blocked.nextClearBit(e);
            }
            return best;
        }
    }

    @Property(tries = 30, shrinking = ShrinkingMode.BOUNDED)
    void neverAllocatesTwiceAndKeepsExactCounts(
            @ForAll @Size(min = 150, max = 300) List<@IntRange(min = 0, max = Integer.MAX_VALUE) Integer> program)
            throws IOException {
        try (AllocImage image = AllocImage.create("model", BLOCKS)) {
            BlockAllocator alloc = image.format();
            Model m = new Model();
            for (Extent e : image.superblocks()) {
                m.used.set((int) e.start(), (int) e.end());
            }
            m.used.set((int) image.region.start(), (int) image.region.extent().end());
            for (int step = 0; step < program.size(); step++) {
                int code = program.get(step);
                Random rnd = new Random(code);
                switch (code % 10) {
                    case 0, 1, 2 -> allocate(alloc, m, null, rnd);
                    case 3 -> free(alloc, m, rnd);
                    case 4 -> reserve(alloc, m, rnd);
                    case 5 -> release(alloc, m, rnd);
                    case 6 -> {
                        if (!m.reservations.isEmpty()) {
                            List<Reservation> rs = new ArrayList<>(m.reservations.keySet());
                            allocate(alloc, m, rs.get(rnd.nextInt(rs.size())), rnd);
                        }
                    }
                    case 7 -> commit(alloc, m, image);
                    case 8 -> {
                        if (m.lastCommitted > 0) {
                            long seq = 1 + rnd.nextInt((int) m.lastCommitted);
                            alloc.transactionCheckpointed(seq);
                            Iterator<Map.Entry<Long, List<Extent>>> it = m.pendingBySeq.headMap(seq, true).entrySet().iterator();
                            while (it.hasNext()) {
                                for (Extent e : it.next().getValue()) {
                                    m.pending.clear((int) e.start(), (int) e.end());
                                }
                                it.remove();
                            }
                        }
                    }
                    case 9 -> {
                        commit(alloc, m, image);
                        image.reopen();
                        alloc = image.mount();
                        m.pending.clear();
                        m.pendingBySeq.clear();
                        m.reservations.clear();
                    }
                    default -> throw new AssertionError();
                }
                StatFs s = alloc.statfs();
                long free = BLOCKS - m.used.cardinality();
                assertThat(s).as("step %d (%d)", step, code).isEqualTo(new StatFs(BLOCKS, free,
                        free - m.pending.cardinality() - m.reserved(), m.reserved(), m.pending.cardinality()));
                for (Map.Entry<Reservation, Long> r : m.reservations.entrySet()) {
                    assertThat(r.getKey().remaining()).isEqualTo(r.getValue());
                }
            }
            commit(alloc, m, image);
            assertThat(alloc.snapshot().freeBlocks()).isEqualTo(BLOCKS - m.used.cardinality());
        }
    }

    private static void allocate(BlockAllocator alloc, Model m, Reservation r, Random rnd) throws IOException {
        long goal = rnd.nextInt(BLOCKS + 100);
        long min = rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(3000) : 1 + rnd.nextInt(20);
        long max = min + (rnd.nextBoolean() ? rnd.nextInt(10) : rnd.nextInt(6000));
        long own = r == null ? 0 : m.reservations.get(r);
        long budget = m.allocatable() - m.reserved() + own;
        long cap = Math.min(max, budget);
        long largest = m.largestRun();
        Extent e;
        try {
            e = alloc.allocate(r, goal, min, max, () -> m.sequence);
        } catch (NoSpaceException x) {
            Statistics.label("allocate").collect(cap < min ? "ENOSPC: budget" : "ENOSPC: fragmented");
            assertThat(cap < min || largest < min).as("ENOSPC with budget %d, largest run %d, asked %d..%d",
                    budget, largest, min, max).isTrue();
            return;
        }
        assertThat(cap >= min && largest >= min).isTrue();
        assertThat(e.length()).isBetween(min, cap);
        assertThat(e.end()).isLessThanOrEqualTo(BLOCKS);
        BitSet range = m.used.get((int) e.start(), (int) e.end());
        range.or(m.pending.get((int) e.start(), (int) e.end()));
        assertThat(range.isEmpty()).as("%s overlaps used or pending blocks", e).isTrue();
        long g = goal >= BLOCKS ? 0 : goal;
        if (e.length() < cap && e.start() != g) {
            assertThat(e.length()).as("short allocation away from the goal must be the largest run").isEqualTo(largest);
        }
        Statistics.label("allocate").collect(e.length() == max ? "full" : e.length() == cap ? "capped by budget" : "short");
        m.used.set((int) e.start(), (int) e.end());
        m.live.add(e);
        if (r != null) {
            m.reservations.put(r, own - Math.min(own, e.length()));
        }
    }

    private static void free(BlockAllocator alloc, Model m, Random rnd) throws IOException {
        if (m.live.isEmpty() || rnd.nextInt(8) == 0) {
            // a bogus free: a range that is (partly) free or pending must be refused and change nothing
            long start = 4 + rnd.nextInt(BLOCKS - 10);
            long length = 1 + rnd.nextInt(5);
            BitSet span = m.used.get((int) start, (int) (start + length));
            BitSet pend = m.pending.get((int) start, (int) (start + length));
            if (span.cardinality() == length && pend.isEmpty() || start + length >= BLOCKS) {
                return;
            }
            assertThatThrownBy(() -> alloc.free(start, length, () -> m.sequence))
                    .isInstanceOfSatisfying(ErrnoException.class, x -> assertThat(x.errno()).isEqualTo(Errno.EUCLEAN.code()));
            return;
        }
        Extent e = m.live.remove(rnd.nextInt(m.live.size()));
        long from = e.start() + (rnd.nextBoolean() ? 0 : rnd.nextLong(e.length()));
        long to = from + 1 + rnd.nextLong(e.end() - from);
        alloc.free(from, to - from, () -> m.sequence);
        if (from > e.start()) {
            m.live.add(new Extent(e.start(), from - e.start()));
        }
        if (to < e.end()) {
            m.live.add(new Extent(to, e.end() - to));
        }
        m.used.clear((int) from, (int) to);
        m.pending.set((int) from, (int) to);
        m.pendingBySeq.computeIfAbsent(m.sequence, k -> new ArrayList<>()).add(new Extent(from, to - from));
    }

    private static void reserve(BlockAllocator alloc, Model m, Random rnd) {
        long available = m.allocatable() - m.reserved();
        long blocks = switch (rnd.nextInt(3)) {
            case 0 -> rnd.nextInt(BLOCKS);
            case 1 -> Math.max(0, available - 40 + rnd.nextInt(80)); // around the boundary
            default -> rnd.nextInt(2000);
        };
        boolean extend = !m.reservations.isEmpty() && rnd.nextBoolean();
        Reservation target = extend ? m.reservations.keySet().iterator().next() : null;
        try {
            if (extend) {
                alloc.extend(target, blocks);
                m.reservations.merge(target, blocks, Long::sum);
            } else {
                m.reservations.put(alloc.reserve(blocks), blocks);
            }
            assertThat(available).isGreaterThanOrEqualTo(blocks);
            Statistics.label("reserve").collect("granted");
        } catch (NoSpaceException x) {
            Statistics.label("reserve").collect("ENOSPC");
            assertThat(available).as("reserve(%d) refused", blocks).isLessThan(blocks);
        }
    }

    private static void release(BlockAllocator alloc, Model m, Random rnd) {
        if (m.reservations.isEmpty()) {
            return;
        }
        List<Reservation> rs = new ArrayList<>(m.reservations.keySet());
        Reservation r = rs.get(rnd.nextInt(rs.size()));
        long have = m.reservations.get(r);
        long give = rnd.nextBoolean() ? have : (have == 0 ? 0 : rnd.nextLong(have + 1));
        alloc.release(r, give);
        if (give == have) {
            m.reservations.remove(r);
        } else {
            m.reservations.put(r, have - give);
        }
    }

    /** Ends the running transaction: its bitmap blocks go to the image, which must then equal the model. */
    private static void commit(BlockAllocator alloc, Model m, AllocImage image) throws IOException {
        alloc.writeDirtyBlocks(() -> m.sequence, image.sink());
        m.lastCommitted = m.sequence;
        m.sequence++;
        BlockBitmap disk = image.load();
        assertThat(disk.freeBlocks()).isEqualTo(BLOCKS - m.used.cardinality());
        for (int b = 0; b < BLOCKS; b++) {
            if (disk.isUsed(b) != m.used.get(b)) {
                fail("block " + b + " is " + (disk.isUsed(b) ? "used" : "free") + " on disk, not in the model");
            }
        }
    }
}
