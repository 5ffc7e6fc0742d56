package io.coherentfs.blockdev.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.TestImages;
import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

class FaultyDeviceTest {
    private static final int BLOCK = 4096;
    private final AlignedBufferPool pool = new AlignedBufferPool();
    private Path image;
    private FaultyDevice device;
    private AlignedBuffer buf;

    @BeforeEach
    void setUp(TestInfo info) throws Exception {
        image = TestImages.fresh("faulty-" + info.getTestMethod().orElseThrow().getName(), 4 << 20);
        device = new FaultyDevice(DirectDevice.open(image));
        buf = pool.allocate(BLOCK);
    }

    @AfterEach
    void tearDown() throws Exception {
        buf.close();
        device.close();
        pool.close();
    }

    /** Writes block {@code n} filled with {@code value}. */
    private void put(long n, int value) throws Exception {
        buf.segment().fill((byte) value);
        device.write(n * BLOCK, buf.segment());
    }

    /** The first byte of block {@code n} as the real device holds it. */
    private int onDisk(long n) throws Exception {
        device.inner().read(n * BLOCK, buf.segment());
        return buf.segment().get(ValueLayout.JAVA_BYTE, 0) & 0xff;
    }

    @Test
    void flushedWritesAlwaysSurviveACrash() throws Exception {
        for (int seed = 0; seed < 20; seed++) {
            device.revive();
            for (int b = 0; b < 16; b++) {
                put(b, seed * 16 + b);
            }
            device.flush();
            device.crash(new Random(seed));
            for (int b = 0; b < 16; b++) {
                assertThat(onDisk(b)).isEqualTo((seed * 16 + b) & 0xff);
            }
        }
    }

    @Test
    void unflushedWritesMayVanishAndEachBlockHoldsOldOrNewData() throws Exception {
        boolean sawLost = false;
        boolean sawLanded = false;
        for (int seed = 0; seed < 30; seed++) {
            device.revive();
            for (int b = 0; b < 8; b++) {
                put(b, 1);
            }
            device.flush();
            for (int b = 0; b < 8; b++) {
                put(b, 2);
            }
            put(3, 3);  // overwritten twice since the flush
            device.crash(new Random(seed));
            for (int b = 0; b < 8; b++) {
                int v = onDisk(b);
                assertThat(v).as("block " + b + " holds old or written data").isIn(1, 2, 3);
                sawLost |= v == 1;
                sawLanded |= v != 1;
            }
        }
        assertThat(sawLost).as("some unflushed write was dropped").isTrue();
        assertThat(sawLanded).as("some unflushed write landed").isTrue();
    }

    @Test
    void asyncWritesFlushedAsynchronouslySurvive() throws Exception {
        buf.segment().fill((byte) 9);
        device.writeAsync(0, buf.segment()).get(30, TimeUnit.SECONDS);
        device.flushAsync(true).get(30, TimeUnit.SECONDS);
        put(1, 8);  // not flushed
        device.crash(new Random(1));
        assertThat(onDisk(0)).isEqualTo(9);
        assertThat(onDisk(1)).isIn(0, 8);
    }

    @Test
    void aCrashedDeviceFailsEveryRequestUntilRevived() throws Exception {
        device.crash(new Random(0));
        assertThatThrownBy(() -> put(0, 1)).isInstanceOf(ErrnoException.class).hasMessageContaining("crashed");
        assertThatThrownBy(() -> device.flush()).isInstanceOf(ErrnoException.class);
        device.revive();
        put(0, 1);
    }

    @Test
    void theNthRequestFailsWithEioOnce() throws Exception {
        device.failNthIo(3);
        put(0, 1);
        put(1, 1);
        assertThatThrownBy(() -> put(2, 1)).isInstanceOf(ErrnoException.MediaErrorException.class)
                .hasMessageContaining("IO #");
        put(2, 1);
        CompletableFuture<Void> f;
        device.failNthIo(1);
        f = device.readAsync(0, buf.segment());
        assertThatThrownBy(() -> f.get()).hasCauseInstanceOf(ErrnoException.MediaErrorException.class);
    }

    @Test
    void aBadRangeFailsOverlappingRequestsOnly() throws Exception {
        device.failRange(10L * BLOCK, BLOCK);
        put(9, 1);
        put(11, 1);
        assertThatThrownBy(() -> put(10, 1)).isInstanceOf(ErrnoException.MediaErrorException.class);
        try (AlignedBuffer two = pool.allocate(2 * BLOCK)) {
            assertThatThrownBy(() -> device.read(9L * BLOCK, two.segment())).isInstanceOf(ErrnoException.class);
        }
        device.clearFaults();
        put(10, 1);
    }

    @Test
    void aTornWriteLandsOnlyItsPrefixAndFails() throws Exception {
        try (AlignedBuffer four = pool.allocate(4 * BLOCK)) {
            four.segment().fill((byte) 5);
            device.write(0, four.segment());
            int sector = device.geometry().dioOffsetAlign();
            four.segment().fill((byte) 6);
            device.tearNextWrite(BLOCK / sector);  // one 4 KiB block's worth of sectors lands
            assertThatThrownBy(() -> device.write(0, four.segment()))
                    .isInstanceOf(ErrnoException.MediaErrorException.class).hasMessageContaining("torn");
        }
        assertThat(onDisk(0)).isEqualTo(6);
        assertThat(onDisk(1)).isEqualTo(5);
        assertThat(onDisk(3)).isEqualTo(5);
    }

    @Test
    void writesPastTheSpaceLimitFailWithEnospc() throws Exception {
        device.limitSpace(2L * BLOCK);
        put(0, 1);
        put(1, 1);
        assertThatThrownBy(() -> put(2, 1)).isInstanceOf(ErrnoException.NoSpaceException.class);
        CompletableFuture<Void> f = device.writeAsync(3L * BLOCK, buf.segment());
        assertThatThrownBy(() -> f.get()).hasCauseInstanceOf(ErrnoException.NoSpaceException.class);
        device.read(2L * BLOCK, buf.segment());  // reads are not limited
        assertThat(MemorySegment.ofArray(new byte[0]).byteSize()).isZero();
    }

    @Test
    void aCrashRacingWritersAndFlushesLeavesOldOrNewDataAndFailsWhatComesAfter() throws Exception {
        for (int b = 0; b < 8; b++) {
            put(b, 1);
        }
        device.flush();
        java.util.List<Thread> threads = new java.util.ArrayList<>();
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(2);
        java.util.concurrent.atomic.AtomicReference<Throwable> unexpected = new java.util.concurrent.atomic.AtomicReference<>();
        for (int t = 0; t < 2; t++) {
            int id = t;
            threads.add(Thread.ofPlatform().start(() -> {
                try (AlignedBuffer mine = pool.allocate(BLOCK)) {
                    mine.segment().fill((byte) 2);
                    started.countDown();
                    for (int i = 0; ; i++) {
                        if (id == 0) {
                            device.write((i % 8) * (long) BLOCK, mine.segment());
                        } else {
                            device.flush();
                        }
                    }
                } catch (ErrnoException e) {
                    if (!e.getMessage().contains("crashed")) {
                        unexpected.set(e);
                    }
                } catch (Throwable e) {
                    unexpected.set(e);
                }
            }));
        }
        started.await();
        device.crash(new Random(7));
        for (Thread t : threads) {
            t.join();
        }
        assertThat(unexpected.get()).isNull();
        for (int b = 0; b < 8; b++) {
            assertThat(onDisk(b)).isIn(1, 2);
        }
    }

    // ---- vectored requests ------------------------------------------------------------------

    /** {@code n} 4 KiB buffers from {@link #pool}, block {@code i} filled with {@code first + i}. */
    private List<AlignedBuffer> blocks(int n, int first) {
        List<AlignedBuffer> bufs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            AlignedBuffer b = pool.allocate(BLOCK);
            b.segment().fill((byte) (first + i));
            bufs.add(b);
        }
        return bufs;
    }

    private static List<MemorySegment> segments(List<AlignedBuffer> bufs) {
        return bufs.stream().map(AlignedBuffer::segment).toList();
    }

    private static void release(List<AlignedBuffer> bufs) {
        bufs.forEach(AlignedBuffer::close);
    }

    /** The first byte of every sector of blocks {@code [first, first + n)} as the real device holds them. */
    private int[] sectorsOnDisk(long first, int n) throws Exception {
        int sector = device.geometry().dioOffsetAlign();
        try (AlignedBuffer all = pool.allocate((long) n * BLOCK)) {
            device.inner().read(first * BLOCK, all.segment());
            int[] firsts = new int[n * BLOCK / sector];
            for (int i = 0; i < firsts.length; i++) {
                firsts[i] = all.segment().get(ValueLayout.JAVA_BYTE, (long) i * sector) & 0xff;
            }
            return firsts;
        }
    }

    @Test
    void aVectoredRequestIsOneIoToTheNthIoRule() throws Exception {
        List<AlignedBuffer> run = blocks(4, 20);
        try {
            device.failNthIo(2);
            long writesBefore = device.writeCount();
            device.writev(0, segments(run));  // IO #1, whatever its segment count
            assertThat(device.writeCount() - writesBefore).isEqualTo(1);
            assertThatThrownBy(() -> device.readv(0, segments(run)))
                    .isInstanceOf(ErrnoException.MediaErrorException.class).hasMessageContaining("IO #");
            device.failNthIo(1);
            CompletableFuture<Void> f = device.writevAsync(8L * BLOCK, segments(run));
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.MediaErrorException.class);
            device.readvAsync(0, segments(run)).get(30, TimeUnit.SECONDS);  // the rule fired once
            for (int b = 0; b < 4; b++) {
                assertThat(onDisk(b)).isEqualTo(20 + b);
                assertThat(onDisk(8 + b)).as("the failed async writev landed nothing").isZero();
            }
        } finally {
            release(run);
        }
    }

    @Test
    void aBadRangeFailsAWholeVectoredRequestThatOverlapsItAndNothingLands() throws Exception {
        List<AlignedBuffer> run = blocks(6, 30);
        try {
            device.failRange(5L * BLOCK, BLOCK);
            assertThatThrownBy(() -> device.writev(2L * BLOCK, segments(run)))  // blocks 2..7
                    .isInstanceOf(ErrnoException.MediaErrorException.class).hasMessageContaining("bad range");
            CompletableFuture<Void> f = device.writevAsync(2L * BLOCK, segments(run));
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.MediaErrorException.class);
            for (int b = 2; b < 8; b++) {
                assertThat(onDisk(b)).as("block " + b).isZero();
            }
            assertThatThrownBy(() -> device.readv(0, segments(run)))  // blocks 0..5
                    .isInstanceOf(ErrnoException.MediaErrorException.class);
            device.writev(6L * BLOCK, segments(run));  // blocks 6..11 miss it
            device.readvAsync(6L * BLOCK, segments(run)).get(30, TimeUnit.SECONDS);
            assertThat(onDisk(6)).isEqualTo(30);
        } finally {
            release(run);
        }
    }

    @Test
    void aVectoredWriteReachingPastTheSpaceLimitFailsWhole() throws Exception {
        List<AlignedBuffer> run = blocks(4, 40);
        try {
            device.limitSpace(4L * BLOCK);
            assertThatThrownBy(() -> device.writev(2L * BLOCK, segments(run)))
                    .isInstanceOf(ErrnoException.NoSpaceException.class);
            CompletableFuture<Void> f = device.writevAsync(2L * BLOCK, segments(run));
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.NoSpaceException.class);
            assertThat(onDisk(2)).as("nothing of the refused write landed").isZero();
            assertThat(onDisk(3)).isZero();
            device.writev(0, segments(run).subList(0, 4));
            device.readv(2L * BLOCK, segments(run));  // reads are not limited
        } finally {
            release(run);
        }
    }

    @Test
    void aTornVectoredWriteLandsAPrefixOfItsRangeEndingInsideASegment() throws Exception {
        int sector = device.geometry().dioOffsetAlign();
        try (AlignedBuffer a = pool.allocate(2 * BLOCK); AlignedBuffer b = pool.allocate(2 * BLOCK)) {
            a.segment().fill((byte) 5);
            b.segment().fill((byte) 5);
            device.writev(0, List.of(a.segment(), b.segment()));
            a.segment().fill((byte) 6);
            b.segment().fill((byte) 6);
            device.tearNextWrite(3 * BLOCK / sector);  // a and the first half of b land
            assertThatThrownBy(() -> device.writev(0, List.of(a.segment(), b.segment())))
                    .isInstanceOf(ErrnoException.MediaErrorException.class).hasMessageContaining("torn");
            assertThat(onDisk(0)).isEqualTo(6);
            assertThat(onDisk(2)).isEqualTo(6);
            assertThat(onDisk(3)).isEqualTo(5);

            a.segment().fill((byte) 7);
            b.segment().fill((byte) 7);
            device.tearNextWrite(BLOCK / sector);
            CompletableFuture<Void> f = device.writevAsync(0, List.of(a.segment(), b.segment()));
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.MediaErrorException.class);
            assertThat(onDisk(0)).isEqualTo(7);
            assertThat(onDisk(1)).isEqualTo(6);
        }
    }

    @Test
    void flushedVectoredWritesSurviveACrash() throws Exception {
        List<AlignedBuffer> sync = blocks(4, 50);
        List<AlignedBuffer> async = blocks(4, 60);
        try {
            device.writev(0, segments(sync));
            device.flush();
            device.writevAsync(4L * BLOCK, segments(async)).get(30, TimeUnit.SECONDS);
            device.flushAsync(true).get(30, TimeUnit.SECONDS);
            device.crash(new Random(3));
            for (int b = 0; b < 4; b++) {
                assertThat(onDisk(b)).isEqualTo(50 + b);
                assertThat(onDisk(4 + b)).isEqualTo(60 + b);
            }
            assertThatThrownBy(() -> device.writev(0, segments(sync))).hasMessageContaining("crashed");
            CompletableFuture<Void> f = device.readvAsync(0, segments(sync));
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.class);
        } finally {
            release(sync);
            release(async);
        }
    }

    /**
     * A crash treats an unflushed vectored write as the one write it is: it lands whole, not at
     * all, or as a prefix of its sectors, never as a scattering of its segments. (Eight
     * single-segment writes would each draw their own fate, and some seed would show new data
     * after old.)
     */
    @Test
    void aCrashKeepsAnUnflushedVectoredWriteWholeLostOrAsAPrefix() throws Exception {
        int n = 8;
        boolean sawWhole = false;
        boolean sawLost = false;
        boolean sawPrefix = false;
        List<AlignedBuffer> old = blocks(n, 1);
        List<AlignedBuffer> run = blocks(n, 100);
        try {
            for (int seed = 0; seed < 60; seed++) {
                device.revive();
                device.writev(0, segments(old));
                device.flush();
                if (seed % 2 == 0) {
                    device.writev(0, segments(run));
                } else {
                    device.writevAsync(0, segments(run)).get(30, TimeUnit.SECONDS);
                }
                // Not new Random(seed): for small seeds the first nextInt(8), which decides the
                // fate of the only pending write, is the same (5, "lost") for every seed.
                device.crash(new Random(new java.util.SplittableRandom(seed).nextLong()));
                int[] sectors = sectorsOnDisk(0, n);
                int perBlock = sectors.length / n;
                int landed = 0;
                while (landed < sectors.length && sectors[landed] == 100 + landed / perBlock) {
                    landed++;
                }
                for (int i = landed; i < sectors.length; i++) {
                    assertThat(sectors[i]).as("seed %d: sector %d after the landed prefix of %d", seed, i, landed)
                            .isEqualTo(1 + i / perBlock);
                }
                sawWhole |= landed == sectors.length;
                sawLost |= landed == 0;
                sawPrefix |= landed > 0 && landed < sectors.length;
            }
        } finally {
            release(old);
            release(run);
        }
        assertThat(sawWhole).as("some crash kept the whole write").isTrue();
        assertThat(sawLost).as("some crash lost the whole write").isTrue();
        assertThat(sawPrefix).as("some crash tore the write").isTrue();
    }

    @Test
    void vectoredWritesInFlightAtACrashLeaveOldOrNewDataPerWrite() throws Exception {
        List<AlignedBuffer> run = blocks(2, 70);
        try {
            List<CompletableFuture<Void>> inFlight = new ArrayList<>();
            for (int w = 0; w < 16; w++) {
                inFlight.add(device.writevAsync(w * 2L * BLOCK, segments(run)));
            }
            device.crash(new Random(new java.util.SplittableRandom(11).nextLong()));  // waits for those in flight
            for (CompletableFuture<Void> f : inFlight) {
                try {
                    f.get(30, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    assertThat(e.getCause()).hasMessageContaining("crashed");
                }
            }
            for (int w = 0; w < 16; w++) {
                int[] sectors = sectorsOnDisk(w * 2L, 2);
                int landed = 0;
                int perBlock = sectors.length / 2;
                while (landed < sectors.length && sectors[landed] == 70 + landed / perBlock) {
                    landed++;
                }
                for (int i = landed; i < sectors.length; i++) {
                    assertThat(sectors[i]).as("write %d, sector %d", w, i).isZero();
                }
            }
        } finally {
            release(run);
        }
    }
}
