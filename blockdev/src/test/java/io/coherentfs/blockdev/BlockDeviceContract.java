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

    // ---- vectored requests ------------------------------------------------------------------

    /**
     * Buffers of the given sizes as the page cache hands over a run of folios: from a pool of
     * 16 KiB slabs (so a run spans several slabs), no buffer following its predecessor in memory.
     * Closing frees them all.
     */
    protected static final class Scattered implements AutoCloseable {
        private final AlignedBufferPool small = new AlignedBufferPool(16384);
        private final List<AlignedBuffer> buffers = new ArrayList<>();
        private final List<AlignedBuffer> spacers = new ArrayList<>();

        Scattered(long... sizes) {
            MemorySegment previous = null;
            for (long size : sizes) {
                AlignedBuffer b = small.allocate(size);
                // The pool may hand out a block right after the previous one (a slab's spilled
                // tail, a split half); keep those as spacers and ask again.
                while (previous != null && previous.address() + previous.byteSize() == b.segment().address()) {
                    spacers.add(b);
                    b = small.allocate(size);
                }
                buffers.add(b);
                previous = b.segment();
                spacers.add(small.allocate(4096));
            }
            for (int i = 0; i + 1 < buffers.size(); i++) {
                MemorySegment a = buffers.get(i).segment();
                MemorySegment b = buffers.get(i + 1).segment();
                assertThat(a.address() + a.byteSize()).as("test setup: segments %d and %d adjacent", i, i + 1)
                        .isNotEqualTo(b.address());
            }
        }

        /** The same sizes, {@code n} times over: e.g. {@code repeat(3, 4096, 8192)}. */
        static Scattered repeat(int n, long... sizes) {
            long[] all = new long[n * sizes.length];
            for (int i = 0; i < all.length; i++) {
                all[i] = sizes[i % sizes.length];
            }
            return new Scattered(all);
        }

        List<MemorySegment> segments() {
            return buffers.stream().map(AlignedBuffer::segment).toList();
        }

        long length() {
            return IoVectors.totalLength(segments());
        }

        void fillAll(long seed) {
            for (int i = 0; i < buffers.size(); i++) {
                fill(buffers.get(i).segment(), seed * 1009 + i);
            }
        }

        /** The segments' bytes, end to end. */
        MemorySegment concatenated(Arena arena) {
            MemorySegment all = arena.allocate(length(), 4096);
            long at = 0;
            for (MemorySegment s : segments()) {
                MemorySegment.copy(s, 0, all, at, s.byteSize());
                at += s.byteSize();
            }
            return all;
        }

        @Override
        public void close() {
            buffers.forEach(AlignedBuffer::close);
            spacers.forEach(AlignedBuffer::close);
            small.close();
        }
    }

    private static final long[] MIXED = {4096, 8192, 4096, 4096, 8192, 8192, 4096};

    @Test
    void vectoredWritesOfScatteredMixedSegmentsReadBackThroughSingleAndVectoredReads() throws Exception {
        for (boolean async : new boolean[] {false, true}) {
            long offset = async ? 8L << 20 : 3L << 20;
            try (Scattered out = Scattered.repeat(3, MIXED); Scattered in = Scattered.repeat(3, MIXED);
                    Arena arena = Arena.ofConfined()) {
                out.fillAll(async ? 2 : 1);
                if (async) {
                    device.writevAsync(offset, out.segments()).get(30, TimeUnit.SECONDS);
                } else {
                    device.writev(offset, out.segments());
                }
                MemorySegment expected = out.concatenated(arena);
                try (AlignedBuffer whole = pool.allocate(out.length())) {
                    device.read(offset, whole.segment());
                    assertSame(whole.segment(), expected, (async ? "writevAsync" : "writev") + " seen by one read");
                }
                if (async) {
                    device.readvAsync(offset, in.segments()).get(30, TimeUnit.SECONDS);
                } else {
                    device.readv(offset, in.segments());
                }
                assertSame(in.concatenated(arena), expected, (async ? "readvAsync" : "readv") + " of the same run");
                for (int i = 0; i < in.segments().size(); i++) {
                    assertSame(in.segments().get(i), out.segments().get(i), "segment " + i);
                }
            }
        }
    }

    @Test
    void vectoredReadsSeeWhatSingleSegmentWritesWrote() throws Exception {
        long offset = 5L << 20;
        try (Scattered in = Scattered.repeat(2, MIXED); AlignedBuffer whole = pool.allocate(in.length());
                Arena arena = Arena.ofConfined()) {
            fill(whole.segment(), 77);
            long at = 0;
            for (long size : MIXED) {  // the run written as seven single requests, twice over
                device.write(offset + at, whole.segment().asSlice(at, size));
                device.write(offset + at + in.length() / 2, whole.segment().asSlice(at + in.length() / 2, size));
                at += size;
            }
            device.readv(offset, in.segments());
            assertSame(in.concatenated(arena), whole.segment(), "readv");
            in.segments().forEach(s -> s.fill((byte) 0));
            device.readvAsync(offset, in.segments()).get(30, TimeUnit.SECONDS);
            assertSame(in.concatenated(arena), whole.segment(), "readvAsync");
        }
    }

    @Test
    void iovMaxSegmentsGoInOneRequestAndEmptyOrLongerListsAreEinval() throws Exception {
        long offset = 16L << 20;
        try (Scattered out = Scattered.repeat(IoVectors.IOV_MAX, 4096);
                Scattered in = Scattered.repeat(IoVectors.IOV_MAX, 4096);
                Arena arena = Arena.ofConfined()) {
            out.fillAll(1024);
            device.writevAsync(offset, out.segments()).get(60, TimeUnit.SECONDS);
            device.readv(offset, in.segments());
            assertSame(in.concatenated(arena), out.concatenated(arena), "1024 segments");

            List<MemorySegment> tooMany = new ArrayList<>(out.segments());
            tooMany.add(out.segments().get(0));
            assertThatThrownBy(() -> device.writev(offset, tooMany))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class).hasMessageContaining("IOV_MAX");
            assertThatThrownBy(() -> device.readv(offset, tooMany))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class);
            CompletableFuture<Void> f = device.readvAsync(offset, tooMany);
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.InvalidArgumentException.class);
        }
        assertThatThrownBy(() -> device.readv(0, List.of()))
                .isInstanceOf(ErrnoException.InvalidArgumentException.class).hasMessageContaining("at least one segment");
        assertThatThrownBy(() -> device.writev(0, List.of()))
                .isInstanceOf(ErrnoException.InvalidArgumentException.class);
        CompletableFuture<Void> f = device.writevAsync(0, List.of());
        assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.InvalidArgumentException.class);
        assertThat(((ErrnoException) f.exceptionNow()).errno()).isEqualTo(22);
    }

    @Test
    void misalignedVectoredRequestsFailWithTypedEinvalAndMoveNothing() throws Exception {
        int align = device.geometry().dioOffsetAlign();
        int memAlign = device.geometry().dioMemoryAlign();
        long offset = 2L << 20;
        try (AlignedBuffer old = pool.allocate(32768); AlignedBuffer now = pool.allocate(32768);
                AlignedBuffer a = pool.allocate(8192); AlignedBuffer b = pool.allocate(8192);
                AlignedBuffer c = pool.allocate(8192)) {
            fill(old.segment(), 11);
            device.write(offset, old.segment());
            fill(a.segment(), 12);
            fill(b.segment(), 13);
            fill(c.segment(), 14);

            List<MemorySegment> badLength = List.of(a.segment(), b.segment().asSlice(0, align + align / 2), c.segment());
            assertThatThrownBy(() -> device.writev(offset, badLength))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class)
                    .hasMessageContaining("segment 1 length").hasMessageContaining("multiple of " + align);
            assertThatThrownBy(() -> device.readv(offset, badLength))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class);
            CompletableFuture<Void> f = device.writevAsync(offset, badLength);
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.MisalignedIoException.class);
            assertThat(((ErrnoException) f.exceptionNow()).errno()).isEqualTo(22);

            assertThatThrownBy(() -> device.writev(offset + align / 2, List.of(a.segment(), b.segment())))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class).hasMessageContaining("offset");
            if (memAlign > 1) {
                List<MemorySegment> badAddress = List.of(a.segment(), c.segment().asSlice(memAlign / 2 + 1, 4096));
                assertThatThrownBy(() -> device.writev(offset, badAddress))
                        .isInstanceOf(ErrnoException.MisalignedIoException.class)
                        .hasMessageContaining("segment 1 buffer address");
                CompletableFuture<Void> g = device.readvAsync(offset, badAddress);
                assertThatThrownBy(g::get).hasCauseInstanceOf(ErrnoException.MisalignedIoException.class);
            }
            assertThatThrownBy(() -> device.writev(offset, List.of(a.segment(), MemorySegment.ofArray(new byte[4096]))))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class).hasMessageContaining("native memory");

            device.read(offset, now.segment());
            assertSame(now.segment(), old.segment(), "bytes after refused vectored writes");
        }
    }

    @Test
    void vectoredIoPastTheEndFailsReadsWithEinvalAndWritesWithEnospc() {
        try (Scattered run = Scattered.repeat(2, 4096)) {
            long end = device.size();
            assertThatThrownBy(() -> device.readv(end - 4096, run.segments()))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class)
                    .hasMessageContaining("beyond the end");
            assertThatThrownBy(() -> device.writev(end, run.segments()))
                    .isInstanceOf(ErrnoException.NoSpaceException.class);
            CompletableFuture<Void> f = device.writevAsync(end - 4096, run.segments());
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.NoSpaceException.class);
        }
    }

    @Test
    void manyVectoredRequestsInFlightEachCompleteWithTheirOwnData() throws Exception {
        int n = 48;
        long[] sizes = {4096, 8192, 4096, 8192};
        List<Scattered> outs = new ArrayList<>();
        List<Scattered> ins = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            long stride = 3 * 24576;
            List<CompletableFuture<Void>> writes = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Scattered out = new Scattered(sizes);
                outs.add(out);
                out.fillAll(5000 + i);
                writes.add(device.writevAsync(i * stride, out.segments()));
            }
            CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
            device.flushAsync(true).get(60, TimeUnit.SECONDS);
            List<CompletableFuture<Void>> reads = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Scattered in = new Scattered(sizes);
                ins.add(in);
                reads.add(device.readvAsync(i * stride, in.segments()));
            }
            CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
            try (AlignedBuffer whole = pool.allocate(24576)) {
                for (int i = 0; i < n; i++) {
                    MemorySegment expected = outs.get(i).concatenated(arena);
                    assertSame(ins.get(i).concatenated(arena), expected, "vectored read " + i);
                    device.read(i * stride, whole.segment());
                    assertSame(whole.segment(), expected, "single read " + i);
                }
            }
        } finally {
            outs.forEach(Scattered::close);
            ins.forEach(Scattered::close);
        }
    }

    /**
     * After the image shrinks under the open device, a vectored read across the new end gets a
     * short transfer, continues it and then meets end of file: that is an error, not success.
     */
    @Test
    void aVectoredReadCutShortByAShrunkImageFailsInsteadOfSucceedingShort() throws Exception {
        long offset = 1L << 20;
        try (Scattered run = Scattered.repeat(4, 4096)) {
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
                f.setLength(offset + 8192);  // two of the four segments still exist
            }
            assertThatThrownBy(() -> device.readv(offset, run.segments()))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(5))
                    .hasMessageContaining("unexpected end").hasMessageContaining(String.valueOf(offset + 8192));
            CompletableFuture<Void> f = device.readvAsync(offset, run.segments());
            assertThatThrownBy(f::get).hasCauseInstanceOf(ErrnoException.class);
            assertThat(((ErrnoException) f.exceptionNow()).errno()).isEqualTo(5);
            assertThat(f.exceptionNow()).hasMessageContaining(String.valueOf(offset + 8192));
        }
    }

    protected static MemorySegment nativeCopy(Arena arena, MemorySegment seg) {
        return arena.allocate(seg.byteSize(), 4096).copyFrom(seg);
    }
}
