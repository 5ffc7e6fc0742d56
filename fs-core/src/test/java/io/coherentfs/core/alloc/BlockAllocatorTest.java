package io.coherentfs.core.alloc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.error.ErrnoException.NoSpaceException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class BlockAllocatorTest {
    /** 3 bitmap blocks (blocks 1..3); the last one partial. */
    static final long BLOCKS = 70_000;
    /** First block format leaves free: after superblock (0) and the bitmap (1..3). */
    static final long FIRST_FREE = 4;

    AllocImage image;
    BlockAllocator alloc;

    @BeforeEach
    void setUp() throws IOException {
        image = AllocImage.create("unit", BLOCKS);
        alloc = image.format();
    }

    @AfterEach
    void tearDown() throws IOException {
        image.close();
    }

    static Txn tx(long sequence) {
        return () -> sequence;
    }

    @Test
    void formatMarksSuperblocksAndBitmapRegionInUse() throws IOException {
        assertThat(image.region.blockCount()).isEqualTo(3);
        StatFs s = alloc.statfs();
        assertThat(s).isEqualTo(new StatFs(BLOCKS, BLOCKS - 5, BLOCKS - 5, 0, 0));
        BlockBitmap loaded = image.load();
        assertThat(loaded.isUsed(0, 4)).isTrue();
        assertThat(loaded.isUsed(BLOCKS - 1)).isTrue();
        assertThat(loaded.isFree(FIRST_FREE, BLOCKS - 1 - FIRST_FREE)).isTrue();
        assertThat(loaded.freeBlocks()).isEqualTo(BLOCKS - 5);
    }

    @Test
    void allocationAtAFreeGoalStartsAtTheGoal() throws IOException {
        assertThat(alloc.allocate(40_000, 1, 10, tx(1))).isEqualTo(new Extent(40_000, 10));
        // goal in use: the next free run after it
        assertThat(alloc.allocate(40_005, 1, 10, tx(1))).isEqualTo(new Extent(40_010, 10));
        // goal past the end: from block 0, i.e. the first free block
        assertThat(alloc.allocate(BLOCKS + 7, 3, 3, tx(1))).isEqualTo(new Extent(FIRST_FREE, 3));
    }

    @Test
    void aFileGrowingFromItsEndGetsOneContiguousRun() throws IOException {
        Extent first = alloc.allocate(1000, 1, 16, tx(1));
        long start = first.start();
        long end = first.end();
        for (int i = 0; i < 500; i++) {
            Extent next = alloc.allocate(end, 1, 1 + i % 37, tx(1 + i / 100));
            assertThat(next.start()).as("allocation %d", i).isEqualTo(end);
            end = next.end();
            if (i % 100 == 99) {
                alloc.writeDirtyBlocks(tx(1 + i / 100), image.sink());
            }
        }
        assertThat(start).isEqualTo(1000);
        assertThat(alloc.snapshot().isUsed(start, end - start)).isTrue();
        assertThat(alloc.statfs().freeBlocks()).isEqualTo(BLOCKS - 5 - (end - start));
    }

    @Test
    void aShortRunAtTheGoalIsTakenAndARunElsewhereIsFirstFitFromTheGoal() throws IOException {
        alloc.allocate(100, 100, 100, tx(1));  // 100..199
        alloc.allocate(205, 95, 95, tx(1));    // 205..299: hole 200..204
        assertThat(alloc.allocate(200, 1, 50, tx(1))).isEqualTo(new Extent(200, 5));
        alloc.allocate(200, 1, 1, tx(1)).start(); // goal full: goes after 299
        alloc.allocate(1000, 10, 10, tx(1));      // 1000..1009
        // from goal 150 (in use): the first run of 20 from there is 301..320
        assertThat(alloc.allocate(150, 20, 20, tx(1))).isEqualTo(new Extent(301, 20));
    }

    @Test
    void theSearchWrapsAroundAndReturnsTheLargestRunWhenNothingIsLongEnough() throws IOException {
        // fill the device except three holes: 10..14 (5), 30_000..30_019 (20), 60_000..60_009 (10)
        List<Extent> holes = List.of(new Extent(10, 5), new Extent(30_000, 20), new Extent(60_000, 10));
        fillExcept(holes);
        assertThat(alloc.statfs().availableBlocks()).isEqualTo(35);
        // goal 50_000: runs of >= 8 scanning 50_000.. then wrapping: 60_000 first
        assertThat(alloc.allocate(50_000, 8, 8, tx(2))).isEqualTo(new Extent(60_000, 8));
        // nothing has 30: the largest (20) is returned
        assertThat(alloc.allocate(65_000, 1, 30, tx(2))).isEqualTo(new Extent(30_000, 20));
        assertThatThrownBy(() -> alloc.allocate(0, 6, 6, tx(2))).isInstanceOf(NoSpaceException.class)
                .hasMessageContaining("no free run of 6 blocks (largest 5)");
        assertThat(alloc.allocate(65_000, 5, 6, tx(2))).isEqualTo(new Extent(10, 5));
        assertThat(alloc.allocate(0, 2, 2, tx(2))).isEqualTo(new Extent(60_008, 2));
        assertThatThrownBy(() -> alloc.allocate(0, 1, 1, tx(2))).isInstanceOf(NoSpaceException.class);
        assertThat(alloc.statfs()).isEqualTo(new StatFs(BLOCKS, 0, 0, 0, 0));
    }

    /** Allocates everything but {@code holes} in transaction 1. */
    private void fillExcept(List<Extent> holes) throws IOException {
        long from = FIRST_FREE;
        for (Extent h : holes) {
            alloc.allocate(from, h.start() - from, h.start() - from, tx(1));
            from = h.end();
        }
        alloc.allocate(from, BLOCKS - 1 - from, BLOCKS - 1 - from, tx(1));
    }

    @Test
    void freedBlocksAreNotReusedBeforeTheirTransactionIsCheckpointed() throws IOException {
        Extent e = alloc.allocate(5000, 100, 100, tx(1));
        alloc.writeDirtyBlocks(tx(1), image.sink());
        alloc.free(e, tx(2));
        StatFs s = alloc.statfs();
        assertThat(s.pendingFreeBlocks()).isEqualTo(100);
        assertThat(s.freeBlocks()).isEqualTo(BLOCKS - 5);
        assertThat(s.availableBlocks()).isEqualTo(BLOCKS - 5 - 100);
        // the goal is exactly the freed extent: still not handed out
        Extent other = alloc.allocate(5000, 1, 100, tx(3));
        assertThat(other.overlaps(e)).isFalse();
        assertThat(other.start()).isEqualTo(5100);
        alloc.writeDirtyBlocks(tx(2), image.sink());
        // tx 2's image on disk has the blocks free already, but not tx 3's allocation
        BlockBitmap onDisk = image.load();
        assertThat(onDisk.isFree(5000, 100)).isTrue();
        assertThat(onDisk.isFree(other.start(), other.length())).isTrue();
        alloc.transactionCheckpointed(1);
        assertThat(alloc.allocate(5000, 1, 100, tx(3)).start()).isNotEqualTo(5000);
        alloc.transactionCheckpointed(2);
        assertThat(alloc.statfs().pendingFreeBlocks()).isZero();
        assertThat(alloc.allocate(5000, 1, 50, tx(3))).isEqualTo(new Extent(5000, 50));
    }

    @Test
    void doubleFreesAreRefusedWithEucleanAndChangeNothing() throws IOException {
        Extent e = alloc.allocate(5000, 10, 10, tx(1));
        alloc.free(5000, 4, tx(1));
        StatFs before = alloc.statfs();
        assertThatThrownBy(() -> alloc.free(5002, 4, tx(1))).isInstanceOfSatisfying(ErrnoException.class,
                x -> assertThat(x.errno()).isEqualTo(Errno.EUCLEAN.code())).hasMessageContaining("already freed");
        assertThatThrownBy(() -> alloc.free(5008, 4, tx(1))).isInstanceOfSatisfying(ErrnoException.class,
                x -> assertThat(x.errno()).isEqualTo(Errno.EUCLEAN.code())).hasMessageContaining("block 5010");
        assertThatThrownBy(() -> alloc.free(2, 1, tx(1))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("bitmap region");
        assertThat(alloc.statfs()).isEqualTo(before);
        alloc.free(new Extent(5004, 6), tx(1));
        assertThat(alloc.statfs().pendingFreeBlocks()).isEqualTo(e.length());
    }

    @Test
    void reservationsCountAgainstFreeSpaceAndAreConsumedByAllocation() throws IOException {
        long free = BLOCKS - 5;
        Reservation a = alloc.reserve(free - 100);
        assertThat(alloc.statfs()).isEqualTo(new StatFs(BLOCKS, free, 100, free - 100, 0));
        assertThatThrownBy(() -> alloc.reserve(101)).isInstanceOf(NoSpaceException.class)
                .hasMessageContaining("need 101 blocks, 100 available");
        Reservation b = alloc.reserve(100);
        assertThat(alloc.statfs().availableBlocks()).isZero();
        assertThat(alloc.reserve(0).remaining()).isZero();
        // unreserved allocations see nothing
        assertThatThrownBy(() -> alloc.allocate(0, 1, 1, tx(1))).isInstanceOf(NoSpaceException.class);
        // an allocation against b gets at most b's blocks
        Extent eb = alloc.allocate(b, 0, 1, 500, tx(1));
        assertThat(eb.length()).isEqualTo(100);
        assertThat(b.remaining()).isZero();
        alloc.release(a, 1000);
        assertThat(a.remaining()).isEqualTo(free - 1100);
        assertThat(alloc.statfs()).isEqualTo(new StatFs(BLOCKS, free - 100, 1000, free - 1100, 0));
        // a's allocation uses its own blocks first, then unreserved space
        Extent ea = alloc.allocate(a, 0, 1, free - 1100 + 10, tx(1));
        assertThat(ea.length()).isGreaterThan(free - 1100);
        assertThat(a.remaining()).isZero();
        assertThat(alloc.statfs().reservedBlocks()).isZero();
        assertThatThrownBy(() -> alloc.release(a, 1)).isInstanceOf(IllegalArgumentException.class);
        StatFs s = alloc.statfs();
        assertThat(s.availableBlocks()).isEqualTo(s.freeBlocks()).isEqualTo(free - 100 - ea.length());
    }

    @Test
    void reserveRefusesExactlyWhenFreeMinusReservedIsTooSmall() throws IOException {
        Extent e = alloc.allocate(0, 10, 10, tx(1));
        alloc.free(e, tx(1));
        long available = BLOCKS - 5 - 10;
        Reservation r = alloc.reserve(available - 7);
        assertThatThrownBy(() -> alloc.extend(r, 8)).isInstanceOf(NoSpaceException.class)
                .hasMessageContaining("10 freed and waiting for a checkpoint");
        assertThat(r.remaining()).isEqualTo(available - 7);
        alloc.extend(r, 7);
        alloc.writeDirtyBlocks(tx(1), image.sink());
        alloc.transactionCheckpointed(1);
        alloc.extend(r, 10);
        assertThatThrownBy(() -> alloc.reserve(1)).isInstanceOf(NoSpaceException.class);
        alloc.release(r, r.remaining());
        assertThat(alloc.statfs()).isEqualTo(new StatFs(BLOCKS, BLOCKS - 5, BLOCKS - 5, 0, 0));
    }

    @Test
    void writeDirtyBlocksWritesOnlyTouchedBlocksAndOnlyChangesUpToTheTransaction() throws IOException {
        List<Long> written = new ArrayList<>();
        alloc.allocate(100, 1, 1, tx(1));                   // bitmap block index 0 -> device block 1
        alloc.allocate(40_000, 1, 1, tx(2));                // index 1 -> device block 2
        assertThat(alloc.writeDirtyBlocks(tx(1), (block, img) -> {
            written.add(block);
            image.sink().write(block, img);
        })).isEqualTo(1);
        assertThat(written).containsExactly(1L);
        BlockBitmap disk = image.load();
        assertThat(disk.isUsed(100)).isTrue();
        assertThat(disk.isUsed(40_000)).isFalse();
        assertThatThrownBy(() -> alloc.transactionCheckpointed(2)).isInstanceOf(IllegalStateException.class);
        // an extent spanning two bitmap blocks dirties both
        alloc.allocate(BitmapFormat.BITS_PER_BLOCK - 5, 10, 10, tx(3));
        written.clear();
        alloc.writeDirtyBlocks(tx(3), (block, img) -> {
            written.add(block);
            image.sink().write(block, img);
        });
        assertThat(written).containsExactly(1L, 2L);
        assertThat(image.load()).isEqualTo(alloc.snapshot());
        assertThat(alloc.writeDirtyBlocks(tx(4), (block, img) -> written.add(-1L))).isZero();
        assertThat(written).containsExactly(1L, 2L);
        // transaction 4 has written out: 3 is over, 4 goes on (another handle of it)
        assertThatThrownBy(() -> alloc.allocate(0, 1, 1, tx(3))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("transaction 3 is over");
        assertThatThrownBy(() -> alloc.free(100, 1, tx(3))).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> alloc.writeDirtyBlocks(tx(3), image.sink())).isInstanceOf(IllegalStateException.class);
        alloc.free(100, 1, tx(4));
        assertThat(alloc.writeDirtyBlocks(tx(4), image.sink())).isEqualTo(1);
        assertThat(image.load().isUsed(100)).isFalse();
    }

    @Test
    void handlesOfOneTransactionWritingOutConcurrentlyLeaveTheNewestImages() throws Exception {
        // every "handle" allocates in transaction 1 and writes out before it closes, as MetaOp does;
        // the images delivered last for each block must be the final state
        java.util.concurrent.ConcurrentHashMap<Long, byte[]> log = new java.util.concurrent.ConcurrentHashMap<>();
        BlockSink journal = (block, img) -> log.put(block, img.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        List<Thread> handles = new ArrayList<>();
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < 8; t++) {
            long seed = t;
            handles.add(Thread.ofPlatform().start(() -> {
                java.util.Random rnd = new java.util.Random(seed);
                try {
                    for (int i = 0; i < 300; i++) {
                        Extent e = alloc.allocate(rnd.nextInt((int) BLOCKS), 1, 1 + rnd.nextInt(4), tx(1));
                        if (rnd.nextBoolean()) {
                            alloc.free(e, tx(1));
                        }
                        alloc.writeDirtyBlocks(tx(1), journal);
                    }
                } catch (Throwable x) {
                    errors.add(x);
                }
            }));
        }
        for (Thread h : handles) {
            h.join();
        }
        assertThat(errors).isEmpty();
        for (var entry : log.entrySet()) {
            image.sink().write(entry.getKey(), java.lang.foreign.MemorySegment.ofArray(entry.getValue()));
        }
        assertThat(image.load()).isEqualTo(alloc.snapshot());
    }

    @Test
    void mountReadsBackWhatWasWritten() throws IOException {
        Set<Extent> live = new HashSet<>();
        for (int i = 0; i < 50; i++) {
            live.add(alloc.allocate(i * 1300L, 1, 1 + i, tx(1)));
        }
        alloc.writeDirtyBlocks(tx(1), image.sink());
        image.reopen();
        BlockAllocator again = image.mount();
        assertThat(again.snapshot()).isEqualTo(alloc.snapshot());
        assertThat(again.statfs()).isEqualTo(alloc.statfs());
        for (Extent e : live) {
            assertThat(again.snapshot().isUsed(e.start(), e.length())).isTrue();
        }
    }
    @Test
    void concurrentAllocateFreeAndReserveNeverHandOutABlockTwice() throws Exception {
        int threads = 8;
        List<List<Extent>> kept = new ArrayList<>();
        List<Thread> workers = new ArrayList<>();
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < threads; t++) {
            List<Extent> mine = new ArrayList<>();
            kept.add(mine);
            long seed = t;
            workers.add(Thread.ofPlatform().start(() -> {
                java.util.Random rnd = new java.util.Random(seed);
                try {
                    for (int i = 0; i < 1000; i++) {
                        Reservation r = alloc.reserve(1 + rnd.nextInt(8));
                        Extent e = alloc.allocate(r, rnd.nextInt((int) BLOCKS), 1, 1 + rnd.nextInt(8), tx(1));
                        alloc.release(r, r.remaining());
                        if (rnd.nextInt(3) == 0) {
                            alloc.free(e, tx(1));
                        } else {
                            mine.add(e);
                        }
                    }
                } catch (Throwable x) {
                    errors.add(x);
                }
            }));
        }
        for (Thread w : workers) {
            w.join();
        }
        assertThat(errors).isEmpty();
        java.util.BitSet seen = new java.util.BitSet();
        long total = 0;
        for (List<Extent> list : kept) {
            for (Extent e : list) {
                assertThat(seen.get((int) e.start(), (int) e.end()).isEmpty()).as("%s handed out twice", e).isTrue();
                seen.set((int) e.start(), (int) e.end());
                total += e.length();
            }
        }
        StatFs s = alloc.statfs();
        assertThat(s.reservedBlocks()).isZero();
        assertThat(s.freeBlocks()).isEqualTo(BLOCKS - 5 - total);
        alloc.writeDirtyBlocks(tx(1), image.sink());
        alloc.transactionCheckpointed(1);
        assertThat(image.load()).isEqualTo(alloc.snapshot());
        assertThat(alloc.statfs().availableBlocks()).isEqualTo(BLOCKS - 5 - total);
    }
    @Test
    void aNewerImageOfABlockIsNeverOvertakenByAnOlderOne() throws Exception {
        var inSink = new java.util.concurrent.CountDownLatch(1);
        var proceed = new java.util.concurrent.CountDownLatch(1);
        var first = new java.util.concurrent.atomic.AtomicBoolean(true);
        var log = new java.util.concurrent.ConcurrentHashMap<Long, byte[]>();
        BlockSink journal = (block, img) -> {
            byte[] copy = img.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            if (first.compareAndSet(true, false)) {
                inSink.countDown();
                try {
                    proceed.await();
                } catch (InterruptedException e) {
                    throw new java.io.InterruptedIOException();
                }
            }
            log.put(block, copy);
        };
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        alloc.allocate(100, 1, 1, tx(1));
        Thread a = Thread.ofPlatform().start(() -> writeOut(journal, errors));
        inSink.await();                           // handle A is delivering its (older) image
        alloc.allocate(200, 1, 1, tx(1));         // the state lock is free meanwhile
        Thread b = Thread.ofPlatform().start(() -> writeOut(journal, errors));
        while (b.isAlive() && b.getState() != Thread.State.BLOCKED) {
            Thread.onSpinWait();                  // B waits for A's delivery (or, if broken, overtakes it)
        }
        proceed.countDown();
        a.join();
        b.join();
        assertThat(errors).isEmpty();
        for (var entry : log.entrySet()) {
            image.sink().write(entry.getKey(), java.lang.foreign.MemorySegment.ofArray(entry.getValue()));
        }
        BlockBitmap logged = image.load();
        assertThat(logged.isUsed(100)).isTrue();
        assertThat(logged.isUsed(200)).as("the newer image must be the one logged").isTrue();
    }

    private void writeOut(BlockSink sink, List<Throwable> errors) {
        try {
            alloc.writeDirtyBlocks(tx(1), sink);
        } catch (Throwable x) {
            errors.add(x);
        }
    }
}
