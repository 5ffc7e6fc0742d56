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
}
