package io.coherentfs.blockdev;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * The contract every {@link BlockDevice} keeps, run against a real O_DIRECT image file. Each
 * implementation (DirectDevice with each engine, FaultyDevice in pass-through) extends this.
 */
public abstract class BlockDeviceContract {
    protected static final long IMAGE_SIZE = 64L << 20;

    protected final AlignedBufferPool pool = new AlignedBufferPool();
    protected BlockDevice device;
    protected Path image;

    /** Opens the device under test over {@code image}. */
    protected abstract BlockDevice open(Path image) throws IOException;

    @BeforeEach
    void setUp(TestInfo info) throws IOException {
        image = TestImages.fresh(getClass().getSimpleName() + "-" + info.getTestMethod().orElseThrow().getName(), IMAGE_SIZE);
        device = open(image);
    }

    @AfterEach
    void tearDown() throws IOException {
        device.close();
        assertThat(pool.outstandingBuffers()).as("buffers leaked by the test").isZero();
        pool.close();
    }

    static void fill(MemorySegment seg, long seed) {
        Random r = new Random(seed);
        for (long i = 0; i < seg.byteSize(); i += 8) {
            seg.set(ValueLayout.JAVA_LONG_UNALIGNED, i, r.nextLong());
        }
    }

    static void assertSame(MemorySegment actual, MemorySegment expected, String what) {
        long mismatch = actual.mismatch(expected);
        assertThat(mismatch).as(what + ": first differing byte").isEqualTo(-1L);
    }

    @Test
    void roundTripsAtManyOffsetsAndSizes() throws Exception {
        int align = device.geometry().dioOffsetAlign();
        long[] sizes = {align, 4096, 8192, 12288, 65536, 1 << 20};
        Random r = new Random(42);
        for (long size : sizes) {
            for (int k = 0; k < 4; k++) {
                long offset = (r.nextLong(IMAGE_SIZE - size) / align) * align;
                try (AlignedBuffer out = pool.allocate(size); AlignedBuffer in = pool.allocate(size)) {
                    fill(out.segment(), size * 31 + k);
                    if (k % 2 == 0) {
                        device.write(offset, out.segment());
                        device.read(offset, in.segment());
                    } else {
                        device.writeAsync(offset, out.segment()).get(30, TimeUnit.SECONDS);
                        device.readAsync(offset, in.segment()).get(30, TimeUnit.SECONDS);
                    }
                    assertSame(in.segment(), out.segment(), "size " + size + " at " + offset);
                }
            }
        }
    }

    @Test
    void lastBlockIsReachableAndDataSurvivesReopen() throws Exception {
        long size = 65536;
        long offset = device.size() - size;
        try (AlignedBuffer out = pool.allocate(size); AlignedBuffer in = pool.allocate(size)) {
            fill(out.segment(), 7);
            device.write(offset, out.segment());
            device.flush();
            device.close();
            device = open(image);
            device.read(offset, in.segment());
            assertSame(in.segment(), out.segment(), "last 64 KiB after reopen");
        }
    }

    @Test
    void misalignedRequestsFailWithEinvalSayingWhatWasRequired() {
        int align = device.geometry().dioOffsetAlign();
        try (AlignedBuffer buf = pool.allocate(8192)) {
            assertThatThrownBy(() -> device.read(align / 2, buf.segment().asSlice(0, 4096)))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class)
                    .hasMessageContaining("offset").hasMessageContaining("multiple of " + align);
            assertThatThrownBy(() -> device.write(0, buf.segment().asSlice(0, align + align / 2)))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class)
                    .hasMessageContaining("length");
            int memAlign = device.geometry().dioMemoryAlign();
            if (memAlign > 1) {
                assertThatThrownBy(() -> device.read(0, buf.segment().asSlice(memAlign / 2 + 1, 4096)))
                        .isInstanceOf(ErrnoException.MisalignedIoException.class)
                        .hasMessageContaining("address");
            }
            assertThatThrownBy(() -> device.read(0, MemorySegment.ofArray(new byte[4096])))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class)
                    .hasMessageContaining("native memory");
            CompletableFuture<Void> f = device.readAsync(align / 2, buf.segment().asSlice(0, 4096));
            assertThatThrownBy(f::get).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(ErrnoException.MisalignedIoException.class);
            assertThat(((ErrnoException) f.exceptionNow()).errno()).isEqualTo(22);
        }
    }

    @Test
    void ioPastTheEndFailsReadsWithEinvalAndWritesWithEnospc() {
        try (AlignedBuffer buf = pool.allocate(8192)) {
            long end = device.size();
            assertThatThrownBy(() -> device.read(end - 4096, buf.segment()))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class)
                    .hasMessageContaining("beyond the end");
            assertThatThrownBy(() -> device.write(end, buf.segment().asSlice(0, 4096)))
                    .isInstanceOf(ErrnoException.NoSpaceException.class);
            CompletableFuture<Void> f = device.writeAsync(end - 4096, buf.segment());
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.NoSpaceException.class);
        }
    }

    @Test
    void thirtyTwoConcurrentSubmissionsEachCompleteWithTheirOwnData() throws Exception {
        int n = 32;
        long size = 16384;
        List<AlignedBuffer> outs = new ArrayList<>();
        List<AlignedBuffer> ins = new ArrayList<>();
        try {
            List<CompletableFuture<Void>> writes = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                AlignedBuffer b = pool.allocate(size);
                outs.add(b);
                fill(b.segment(), 1000 + i);
                writes.add(device.writeAsync(i * size * 3, b.segment()));
            }
            CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
            device.flushAsync(true).get(60, TimeUnit.SECONDS);
            List<CompletableFuture<Void>> reads = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                AlignedBuffer b = pool.allocate(size);
                ins.add(b);
                reads.add(device.readAsync(i * size * 3, b.segment()));
            }
            CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
            for (int i = 0; i < n; i++) {
                assertSame(ins.get(i).segment(), outs.get(i).segment(), "request " + i);
            }
        } finally {
            outs.forEach(AlignedBuffer::close);
            ins.forEach(AlignedBuffer::close);
        }
    }

    @Test
    void manyThreadsSubmittingAtOnceLoseNoCompletion() throws Exception {
        int threads = 8;
        int perThread = 200;
        long size = 4096;
        try (AlignedBuffer region = pool.allocate(threads * size)) {
            fill(region.segment(), 99);
            List<Thread> ts = new ArrayList<>();
            List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int t = 0; t < threads; t++) {
                int id = t;
                ts.add(Thread.ofPlatform().start(() -> {
                    MemorySegment mine = region.segment().asSlice(id * size, size);
                    List<CompletableFuture<Void>> fs = new ArrayList<>();
                    for (int i = 0; i < perThread; i++) {
                        fs.add(i % 2 == 0 ? device.writeAsync((id * perThread + i) * size, mine)
                                : device.readAsync((id * perThread + i - 1) * size, mine));
                    }
                    try {
                        CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
                    } catch (Exception e) {
                        failures.add(e);
                    }
                }));
            }
            for (Thread t : ts) {
                t.join();
            }
            assertThat(failures).isEmpty();
        }
    }

    @Test
    void flushAndFsyncSucceedSynchronouslyAndAsynchronously() throws Exception {
        try (AlignedBuffer buf = pool.allocate(4096)) {
            fill(buf.segment(), 5);
            device.write(0, buf.segment());
            device.flush();
            device.fsync();
            device.writeAsync(4096, buf.segment()).get(30, TimeUnit.SECONDS);
            device.flushAsync(true).get(30, TimeUnit.SECONDS);
            device.flushAsync(false).get(30, TimeUnit.SECONDS);
        }
    }

    @Test
    void discardedRangeReadsBackAsZerosOnAnImageFile() throws Exception {
        try (AlignedBuffer buf = pool.allocate(65536); AlignedBuffer zeros = pool.allocate(65536)) {
            fill(buf.segment(), 3);
            zeros.segment().fill((byte) 0);
            device.write(1 << 20, buf.segment());
            device.discard(1 << 20, 65536);
            device.read(1 << 20, buf.segment());
            assertSame(buf.segment(), zeros.segment(), "discarded range");
        }
    }

    @Test
    void closedDeviceRefusesRequestsWithEbadf() throws IOException {
        device.close();
        try (AlignedBuffer buf = pool.allocate(4096)) {
            assertThatThrownBy(() -> device.read(0, buf.segment()))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(9));
        }
        device = open(image);
    }

    protected static MemorySegment nativeCopy(Arena arena, MemorySegment seg) {
        return arena.allocate(seg.byteSize(), 4096).copyFrom(seg);
    }
}
