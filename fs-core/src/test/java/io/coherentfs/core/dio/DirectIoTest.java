package io.coherentfs.core.dio;

import static io.coherentfs.core.dio.DioTestRig.EINVAL;
import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.bytes;
import static io.coherentfs.core.dio.DioTestRig.random;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.ThrowingConsumer;

/** Direct IO and AIO behaviour: round trips, alignment rules, sub-block writes, coherence with buffered IO, EOF, crashes. */
class DirectIoTest {

    private static void assertErrno(Exception e, int errno) {
        assertThat(e).isInstanceOf(ErrnoException.class);
        assertThat(((ErrnoException) e).errno()).as(e.getMessage()).isEqualTo(errno);
    }

    @Test
    void syncAndAioRoundTrips() throws Exception {
        Random r = new Random(1);
        try (DioTestRig rig = new DioTestRig("roundtrip")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            OpenFile b = rig.open(ino);
            byte[] model = new byte[16 * PAGE];
            byte[] a = random(r, 8 * PAGE);
            assertThat(rig.fs.write(d, 0, rig.buffer(a))).isEqualTo(a.length);          // sync, extending
            System.arraycopy(a, 0, model, 0, a.length);
            byte[] c = random(r, 8 * PAGE);
            CompletionStage<Integer> ext = rig.fs.aioWrite(d, 8L * PAGE, rig.buffer(c)); // aio, extending
            assertThat(ext.toCompletableFuture().isDone()).as("an extending AIO completes before aioWrite returns").isTrue();
            assertThat(rig.guard(ext.toCompletableFuture(), "aio")).isEqualTo(c.length);
            System.arraycopy(c, 0, model, 8 * PAGE, c.length);
            byte[] e = random(r, 3 * PAGE);
            assertThat(rig.guard(rig.fs.aioWrite(d, 2L * PAGE, rig.buffer(e)).toCompletableFuture(), "aio")) // async overwrite
                    .isEqualTo(e.length);
            System.arraycopy(e, 0, model, 2 * PAGE, e.length);
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(16L * PAGE);

            assertThat(rig.readDirect(d, 0, 16 * PAGE)).isEqualTo(model);
            MemorySegment back = rig.buffer(16 * PAGE);
            assertThat(rig.guard(rig.fs.aioRead(d, 0, back).toCompletableFuture(), "aioRead")).isEqualTo(16 * PAGE);
            assertThat(bytes(back, 16 * PAGE)).isEqualTo(model);
            assertThat(rig.readBuffered(b, 0, 16 * PAGE)).isEqualTo(model);
            // a heap array is no O_DIRECT buffer address: it goes through a bounce buffer
            byte[] heap = new byte[4 * PAGE];
            assertThat(rig.fs.read(d, 4L * PAGE, MemorySegment.ofArray(heap))).isEqualTo(heap.length);
            assertThat(heap).isEqualTo(Arrays.copyOfRange(model, 4 * PAGE, 8 * PAGE));

            // O_APPEND: at the end whatever the offset
            OpenFile app = rig.fs.open(ino, OpenFile.O_RDWR | OpenFile.O_DIRECT | OpenFile.O_APPEND);
            byte[] tail = random(r, PAGE);
            rig.fs.write(app, 0, rig.buffer(tail));
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(17L * PAGE);
            assertThat(rig.readBuffered(b, 16L * PAGE, PAGE)).isEqualTo(tail);
            for (OpenFile f : List.of(d, b, app)) {
                rig.fs.release(f);
            }
            rig.remount("round trip");
            OpenFile again = rig.open(ino);
            byte[] all = rig.readBuffered(again, 0, 17 * PAGE);
            assertThat(Arrays.copyOf(all, 16 * PAGE)).isEqualTo(model);
            assertThat(Arrays.copyOfRange(all, 16 * PAGE, 17 * PAGE)).isEqualTo(tail);
            rig.fs.release(again);
        }
    }

    @Test
    void misalignedOffsetLengthOrMemoryIsEinval() throws Exception {
        try (DioTestRig rig = new DioTestRig("einval")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            rig.fs.write(d, 0, rig.buffer(new byte[4 * PAGE]));
            MemorySegment ok = rig.buffer(2 * PAGE);
            MemorySegment misalignedMemory = rig.buffer(3 * PAGE).asSlice(256, PAGE); // 256-aligned address
            List<ThrowingConsumer<Object>> calls = new ArrayList<>();
            calls.add(x -> rig.fs.read(d, 100, ok));
            calls.add(x -> rig.fs.read(d, 0, ok.asSlice(0, 1000)));
            calls.add(x -> rig.fs.read(d, 0, misalignedMemory));
            calls.add(x -> rig.fs.write(d, 100, ok));
            calls.add(x -> rig.fs.write(d, 0, ok.asSlice(0, 1000)));
            calls.add(x -> rig.fs.write(d, 0, misalignedMemory));
            calls.add(x -> rig.fs.aioRead(d, 4096 + 256, ok));
            calls.add(x -> rig.fs.aioRead(d, 0, misalignedMemory));
            calls.add(x -> rig.fs.aioWrite(d, 4096 + 511, ok));
            calls.add(x -> rig.fs.aioWrite(d, 0, ok.asSlice(0, 4095)));
            calls.add(x -> rig.fs.aioWrite(d, 0, misalignedMemory));
            for (int i = 0; i < calls.size(); i++) {
                ThrowingConsumer<Object> call = calls.get(i);
                int n = i;
                assertThatThrownBy(() -> call.accept(null)).as("call " + n)
                        .satisfies(e -> assertErrno((Exception) e, EINVAL));
            }
            // nothing changed, nothing is left blocked
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(4L * PAGE);
            assertThat(rig.readDirect(d, 0, 4 * PAGE)).isEqualTo(new byte[4 * PAGE]);
            rig.fs.release(d);
        }
    }

    /**
     * 512-aligned writes that are not 4 KiB aligned: a read-modify-write of the edge blocks. Over a
     * hole inside EOF, over written blocks, over a dirty (delalloc) cached page, past EOF with a
     * gap, and across a block boundary: each reads back exactly, with nothing stale next to it,
     * through a buffered read, a direct read and after a remount.
     */
    @Test
    void subBlockWritesReadBackExactly() throws Exception {
        Random r = new Random(2);
        try (DioTestRig rig = new DioTestRig("subblock")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            OpenFile b = rig.open(ino);
            int size = 32 * PAGE;
            byte[] model = new byte[size];
            byte[] written = random(r, 8 * PAGE); // pages 0-7 written and synced
            rig.fs.write(b, 0, MemorySegment.ofArray(written));
            System.arraycopy(written, 0, model, 0, written.length);
            rig.fs.setattr(ino, SetAttr.size(size)); // pages 8-31: a hole inside EOF
            rig.fs.fsync(b, false);
            byte[] dirty = random(r, PAGE); // page 12: dirty in the cache, delalloc, not on disk
            rig.fs.write(b, 12L * PAGE, MemorySegment.ofArray(dirty));
            System.arraycopy(dirty, 0, model, 12 * PAGE, PAGE);

            long[][] writes = {
                    {PAGE + 512, 512},            // inside a written block
                    {3L * PAGE + 3584, 1024},     // across the boundary of two written blocks
                    {9L * PAGE + 1024, 2048},     // inside a hole
                    {10L * PAGE + 3584, PAGE},    // across two hole blocks
                    {12L * PAGE + 512, 1536},     // over the dirty cached page
                    {7L * PAGE + 2048, 2 * PAGE}, // written block, then hole blocks
            };
            for (long[] w : writes) {
                byte[] data = random(r, (int) w[1]);
                assertThat(rig.fs.write(d, w[0], rig.buffer(data))).isEqualTo(data.length);
                System.arraycopy(data, 0, model, (int) w[0], data.length);
                assertThat(rig.readBuffered(b, 0, size)).as("buffered, after the write at " + w[0]).isEqualTo(model);
                assertThat(rig.readDirect(d, 0, size)).as("direct, after the write at " + w[0]).isEqualTo(model);
            }
            // past EOF with a gap: the gap reads as zeros, the size is exact
            byte[] far = random(r, 1536);
            rig.fs.write(d, size + 2L * PAGE + 512, rig.buffer(far));
            byte[] grown = Arrays.copyOf(model, size + 2 * PAGE + 512 + 1536);
            System.arraycopy(far, 0, grown, size + 2 * PAGE + 512, far.length);
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(grown.length);
            assertThat(rig.readBuffered(b, 0, grown.length + PAGE)).isEqualTo(grown);
            assertThat(rig.readDirect(d, 0, grown.length + 512)).isEqualTo(grown);
            rig.fs.release(d);
            rig.fs.release(b);
            rig.remount("sub-block writes");
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 0, grown.length + PAGE)).as("after remount").isEqualTo(grown);
            rig.fs.release(again);
        }
    }

    @Test
    void directIoAndBufferedIoSeeEachOthersWrites() throws Exception {
        Random r = new Random(3);
        try (DioTestRig rig = new DioTestRig("coherent")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            OpenFile b = rig.open(ino);
            byte[] model = random(r, 16 * PAGE);
            rig.fs.write(b, 0, MemorySegment.ofArray(model));
            rig.fs.fsync(b, false);
            // buffered data dirty in the cache: a direct read returns it
            byte[] dirty = random(r, 2 * PAGE + 100);
            rig.fs.write(b, 3L * PAGE + 7, MemorySegment.ofArray(dirty));
            System.arraycopy(dirty, 0, model, 3 * PAGE + 7, dirty.length);
            assertThat(rig.readDirect(d, 0, 16 * PAGE)).as("direct read over dirty buffered data").isEqualTo(model);
            // the cache holds the range (clean): a direct write, then a buffered read sees it
            rig.readBuffered(b, 0, 16 * PAGE);
            byte[] dw = random(r, 4 * PAGE);
            rig.fs.write(d, 2L * PAGE, rig.buffer(dw));
            System.arraycopy(dw, 0, model, 2 * PAGE, dw.length);
            assertThat(rig.readBuffered(b, 0, 16 * PAGE)).as("buffered read after a direct write").isEqualTo(model);
            // the same through AIO (async overwrite; cached pages: deferred completion)
            rig.readBuffered(b, 0, 16 * PAGE);
            byte[] aw = random(r, 2 * PAGE);
            rig.guard(rig.fs.aioWrite(d, 10L * PAGE, rig.buffer(aw)).toCompletableFuture(), "aio");
            System.arraycopy(aw, 0, model, 10 * PAGE, aw.length);
            assertThat(rig.readBuffered(b, 0, 16 * PAGE)).as("buffered read after an AIO write").isEqualTo(model);
            // dirty buffered data under a direct write: the direct data wins and stays after writeback
            byte[] bw = random(r, 3 * PAGE);
            rig.fs.write(b, 5L * PAGE, MemorySegment.ofArray(bw));
            System.arraycopy(bw, 0, model, 5 * PAGE, bw.length);
            byte[] over = random(r, PAGE);
            rig.fs.write(d, 6L * PAGE, rig.buffer(over));
            System.arraycopy(over, 0, model, 6 * PAGE, over.length);
            byte[] sub = random(r, 512);
            rig.fs.write(d, 7L * PAGE + 1024, rig.buffer(sub)); // sub-block over a dirty page
            System.arraycopy(sub, 0, model, 7 * PAGE + 1024, sub.length);
            assertThat(rig.readBuffered(b, 0, 16 * PAGE)).isEqualTo(model);
            assertThat(rig.readDirect(d, 0, 16 * PAGE)).isEqualTo(model);
            // and a buffered write after a direct write: a direct read sees it
            byte[] late = random(r, 1000);
            rig.fs.write(b, 6L * PAGE + 10, MemorySegment.ofArray(late));
            System.arraycopy(late, 0, model, 6 * PAGE + 10, late.length);
            assertThat(rig.readDirect(d, 0, 16 * PAGE)).isEqualTo(model);
            rig.fs.fsync(b, false);
            rig.fs.release(d);
            rig.fs.release(b);
            rig.remount("coherence");
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 0, 16 * PAGE)).as("after remount").isEqualTo(model);
            rig.fs.release(again);
        }
    }

    @Test
    void directReadsPastEofAreShort() throws Exception {
        try (DioTestRig rig = new DioTestRig("eof")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            OpenFile b = rig.open(ino);
            byte[] data = random(new Random(4), 5000);
            rig.fs.write(b, 0, MemorySegment.ofArray(data));
            MemorySegment buf = rig.buffer(2 * PAGE);
            assertThat(rig.fs.read(d, PAGE, buf)).isEqualTo(5000 - PAGE);
            assertThat(bytes(buf, 5000 - PAGE)).isEqualTo(Arrays.copyOfRange(data, PAGE, 5000));
            assertThat(rig.fs.read(d, 0, buf)).isEqualTo(5000);
            assertThat(bytes(buf, 5000)).isEqualTo(data);
            assertThat(rig.fs.read(d, 8192, buf)).isZero();
            assertThat(rig.fs.read(d, 1L << 30, buf)).isZero();
            assertThat(rig.guard(rig.fs.aioRead(d, 4608, buf).toCompletableFuture(), "aioRead")).isEqualTo(5000 - 4608);
            assertThat(rig.guard(rig.fs.aioRead(d, 5120, buf).toCompletableFuture(), "aioRead")).isZero();
            rig.fs.release(d);
            rig.fs.release(b);
        }
    }

    /**
     * A direct read that ends at EOF inside a sector goes through a bounce buffer; when the
     * caller's memory is confined to its thread (Arena.ofConfined, as a FUSE transport's worker
     * buffers may be), the copy out of the bounce must happen on that thread, not on the IO
     * engine's completion thread (WrongThreadException, answered as EIO, before): for read(2)
     * and for an asynchronous read alike.
     */
    @Test
    void aDirectReadIntoThreadConfinedMemoryEndingInsideASectorAtEof() throws Exception {
        try (DioTestRig rig = new DioTestRig("eof-confined"); Arena confined = Arena.ofConfined()) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            OpenFile b = rig.open(ino);
            byte[] data = random(new Random(7), 3 * PAGE + 3);
            rig.fs.write(b, 0, MemorySegment.ofArray(data));
            MemorySegment buf = confined.allocate(4 * PAGE, PAGE);
            assertThat(rig.fs.read(d, 0, buf)).isEqualTo(data.length);
            assertThat(bytes(buf, data.length)).isEqualTo(data);
            // read(2) reads on the caller's thread anyway; io_submit's completion is the other path
            MemorySegment aio = confined.allocate(4 * PAGE, PAGE);
            assertThat(rig.guard(rig.fs.aioRead(d, 0, aio).toCompletableFuture(), "aioRead")).isEqualTo(data.length);
            assertThat(bytes(aio, data.length)).isEqualTo(data);
            rig.fs.release(d);
            rig.fs.release(b);
        }
    }

    @Test
    void directWritesIntoAHoleAndPastEofSurviveARemount() throws Exception {
        Random r = new Random(5);
        try (DioTestRig rig = new DioTestRig("hole")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            rig.fs.setattr(ino, SetAttr.size(16L * PAGE));
            byte[] inHole = random(r, 2 * PAGE);
            rig.fs.write(d, 4L * PAGE, rig.buffer(inHole));
            byte[] past = random(r, 3 * PAGE);
            rig.guard(rig.fs.aioWrite(d, 40L * PAGE, rig.buffer(past)).toCompletableFuture(), "aio past EOF");
            byte[] model = new byte[43 * PAGE];
            System.arraycopy(inHole, 0, model, 4 * PAGE, inHole.length);
            System.arraycopy(past, 0, model, 40 * PAGE, past.length);
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(43L * PAGE);
            assertThat(rig.fs.getattr(ino).blocks() / 8).as("blocks: only what was written").isEqualTo(5);
            rig.fs.release(d);
            rig.remount("hole and past EOF");
            OpenFile again = rig.open(ino);
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(43L * PAGE);
            assertThat(rig.readBuffered(again, 0, 44 * PAGE)).isEqualTo(model);
            assertThat(rig.fs.lseek(again, 0, io.coherentfs.core.vfs.Vfs.SEEK_DATA)).isEqualTo(4L * PAGE);
            rig.fs.release(again);
        }
    }

    /** An O_DSYNC direct write (sync or AIO; into a hole, extending, over data) survives a power cut. */
    @Test
    void oDsyncDirectWritesSurviveACrash() throws Exception {
        for (long seed = 0; seed < 6; seed++) {
            Random r = new Random(seed);
            try (DioTestRig rig = new DioTestRig("dsync-" + seed)) {
                long ino = rig.create("f");
                OpenFile b = rig.open(ino);
                byte[] base = random(r, 4 * PAGE);
                rig.fs.write(b, 0, MemorySegment.ofArray(base));
                rig.fs.setattr(ino, SetAttr.size(12L * PAGE));
                rig.fs.fsync(b, false);
                OpenFile ds = rig.fs.open(ino, OpenFile.O_RDWR | OpenFile.O_DIRECT | OpenFile.O_DSYNC);
                byte[] model = Arrays.copyOf(base, 20 * PAGE);
                byte[] over = random(r, PAGE);
                rig.fs.write(ds, PAGE, rig.buffer(over));                            // over data
                byte[] hole = random(r, 2 * PAGE);
                rig.guard(rig.fs.aioWrite(ds, 6L * PAGE, rig.buffer(hole)).toCompletableFuture(), "aio dsync");
                byte[] ext = random(r, 4 * PAGE + 512);
                rig.fs.write(ds, 15L * PAGE, rig.buffer(ext));                       // extending, sub-block tail
                System.arraycopy(over, 0, model, PAGE, over.length);
                System.arraycopy(hole, 0, model, 6 * PAGE, hole.length);
                System.arraycopy(ext, 0, model, 15 * PAGE, ext.length);
                long size = 19L * PAGE + 512;
                // unflushed noise after the O_DSYNC writes: may or may not survive, must not matter
                rig.fs.write(b, 30L * PAGE, MemorySegment.ofArray(random(r, PAGE)));
                rig.crashAndRecover(seed);
                OpenFile again = rig.open(ino);
                assertThat(rig.fs.getattr(ino).size()).as("seed " + seed + ": size after the crash").isEqualTo(size);
                assertThat(rig.readBuffered(again, 0, (int) size))
                        .as("seed " + seed + ": data after the crash").isEqualTo(Arrays.copyOf(model, (int) size));
                rig.fs.release(again);
            }
        }
    }

    /** 64 AIO writes in flight at once on one file (half into holes, half over data) all land. */
    @Test
    void manyAioWritesInFlightAllLand() throws Exception {
        Random r = new Random(6);
        int n = 64;
        try (DioTestRig rig = new DioTestRig("aio64")) {
            long ino = rig.create("f");
            OpenFile b = rig.open(ino);
            OpenFile d = rig.openDirect(ino);
            int size = 2 * n * 2 * PAGE;
            byte[] model = new byte[size];
            byte[] first = random(r, size / 2);
            rig.fs.write(b, 0, MemorySegment.ofArray(first));        // the first half written...
            System.arraycopy(first, 0, model, 0, first.length);
            rig.fs.setattr(ino, SetAttr.size(size));                  // ...the second half a hole
            rig.fs.fsync(b, false);
            rig.readBuffered(b, 0, PAGE);                            // a cached page: completions are deferred
            rig.device.hold();
            List<CompletableFuture<Integer>> inFlight = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                long at = (long) (i % 2 == 0 ? i : n + i) * 2 * PAGE; // even: written half, odd: hole half
                byte[] data = random(r, (1 + r.nextInt(2)) * PAGE);
                inFlight.add(rig.fs.aioWrite(d, at, rig.buffer(data)).toCompletableFuture());
                System.arraycopy(data, 0, model, (int) at, data.length);
            }
            rig.device.awaitHeld(n);
            assertThat(inFlight).as("all in flight").noneMatch(CompletableFuture::isDone);
            rig.device.release();
            for (CompletableFuture<Integer> f : inFlight) {
                rig.guard(f, "an AIO write");
            }
            assertThat(rig.readBuffered(b, 0, size)).isEqualTo(model);
            assertThat(rig.readDirect(d, 0, size)).isEqualTo(model);
            rig.fs.release(b);
            rig.fs.release(d);
            rig.remount("64 AIO writes");
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 0, size)).as("after remount").isEqualTo(model);
            rig.fs.release(again);
        }
    }

    /** A truncate while an AIO write into a hole is in flight waits for it (inode_dio_wait); the image stays consistent. */
    @Test
    void truncateWaitsForAnAioWriteInFlight() throws Exception {
        try (DioTestRig rig = new DioTestRig("aio-truncate")) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            rig.fs.setattr(ino, SetAttr.size(16L * PAGE));
            rig.device.hold();
            CompletableFuture<Integer> aio = rig.fs.aioWrite(d, 4L * PAGE, rig.buffer(random(new Random(7), 4 * PAGE)))
                    .toCompletableFuture();
            rig.device.awaitHeld(1);
            CompletableFuture<Object> trunc = DioTestRig.async("truncate", () -> rig.fs.setattr(ino, SetAttr.size(0)));
            rig.device.release();
            assertThat(rig.guard(aio, "the AIO write")).isEqualTo(4 * PAGE);
            rig.guard(trunc, "the truncate");
            assertThat(rig.fs.getattr(ino).size()).isZero();
            assertThat(rig.fs.getattr(ino).blocks()).isZero();
            rig.fs.release(d);
            rig.remount("truncate during AIO");
        }
    }
}
