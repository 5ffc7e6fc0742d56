package io.coherentfs.core.dio;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.random;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** Direct writes that fail at the device, and an unmount while an AIO write is in flight. */
class DirectIoErrorTest {

    /**
     * The device fails a direct write's IO (EIO injected just before the submission): sync and
     * AIO, over written blocks and into a hole. The error reaches the caller, nothing stays
     * blocked, the file keeps its old contents (or zeros in the hole), and the image is consistent.
     */
    @Test
    void aFailedDirectWriteReportsEioAndLeavesNothingBlocked() throws Exception {
        Random r = new Random(9);
        try (DioTestRig rig = new DioTestRig("eio")) {
            long ino = rig.create("f");
            OpenFile b = rig.open(ino);
            OpenFile d = rig.openDirect(ino);
            byte[] old = random(r, 8 * PAGE);
            rig.fs.write(b, 0, MemorySegment.ofArray(old));
            rig.fs.setattr(ino, SetAttr.size(16L * PAGE)); // pages 8-15: a hole
            rig.fs.fsync(b, false);
            byte[] model = Arrays.copyOf(old, 16 * PAGE);
            rig.readBuffered(b, 0, 16 * PAGE); // cached: completions have work to defer
            rig.race.arm("dio-write.before-submit", () -> {
                // The next IO must be this write's: let the journal finish a commit it may have
                // in flight (the allocation of a hole's unwritten extent) first, or its flush
                // takes the fault and aborts the journal instead.
                try {
                    rig.fs.meta().commit();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                rig.faulty.failNthIo(1);
            });
            long[] offsets = {PAGE, 10L * PAGE};
            for (long at : offsets) {
                for (boolean aio : new boolean[] {false, true}) {
                    MemorySegment src = rig.buffer(random(r, 2 * PAGE));
                    String what = (aio ? "aio" : "sync") + " write at " + at;
                    if (aio) {
                        CompletableFuture<Integer> f = rig.fs.aioWrite(d, at, src).toCompletableFuture();
                        assertThatThrownBy(() -> rig.guard(f, what)).as(what).isInstanceOf(ErrnoException.class)
                                .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(5));
                    } else {
                        assertThatThrownBy(() -> rig.fs.write(d, at, src)).as(what)
                                .isInstanceOf(ErrnoException.class)
                                .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(5));
                    }
                    byte[] back = rig.guard(DioTestRig.async("reader", () -> rig.readBuffered(b, 0, 16 * PAGE)),
                            "a buffered read after the failed " + what);
                    assertThat(back).as("contents after the failed " + what).isEqualTo(model);
                }
            }
            rig.race.disarm("dio-write.before-submit");
            rig.faulty.clearFaults();
            byte[] good = random(r, 2 * PAGE);
            rig.fs.write(d, 10L * PAGE, rig.buffer(good));
            System.arraycopy(good, 0, model, 10 * PAGE, good.length);
            assertThat(rig.readBuffered(b, 0, 16 * PAGE)).isEqualTo(model);
            rig.fs.release(b);
            rig.fs.release(d);
            rig.remount("after failed direct writes");
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 0, 16 * PAGE)).isEqualTo(model);
            rig.fs.release(again);
        }
    }

    /** An unmount while an AIO write into a hole is in flight waits for it; the data is there after a mount. */
    @Test
    void unmountWaitsForAnAioWriteInFlight() throws Exception {
        byte[] data = random(new Random(10), 4 * PAGE);
        try (DioTestRig rig = new DioTestRig("aio-unmount")) {
            long ino = rig.create("f");
            OpenFile b = rig.open(ino);
            OpenFile d = rig.openDirect(ino);
            rig.fs.setattr(ino, SetAttr.size(16L * PAGE));
            rig.readBuffered(b, 0, PAGE);
            rig.device.hold();
            CompletableFuture<Integer> aio = rig.fs.aioWrite(d, 4L * PAGE, rig.buffer(data)).toCompletableFuture();
            rig.device.awaitHeld(1);
            CoherentFs mounted = rig.fs;
            CompletableFuture<Object> unmount = DioTestRig.async("unmount", () -> {
                mounted.close();
                return null;
            });
            rig.device.release();
            assertThat(rig.guard(aio, "the AIO write")).isEqualTo(data.length);
            rig.guard(unmount, "the unmount");
            rig.fs = null;
            rig.assertFsckClean("after an unmount during an AIO write");
            rig.fs = CoherentFs.open(rig.device, CoherentFs.Options.DEFAULT);
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 4L * PAGE, data.length)).isEqualTo(data);
            rig.fs.release(again);
        }
    }

    /**
     * A direct write larger than the free space, into a hole inside EOF and past EOF: ENOSPC,
     * nothing left blocked, the size unchanged, the image clean, and the space back after a
     * truncate (within one block: the extent tree keeps a node it grew).
     */
    @Test
    void aDirectWriteBeyondTheFreeSpaceIsEnospc() throws Exception {
        try (DioTestRig rig = new DioTestRig("enospc", 16L << 20)) {
            long ino = rig.create("f");
            OpenFile b = rig.open(ino);
            OpenFile d = rig.openDirect(ino);
            rig.fs.setattr(ino, SetAttr.size(64L << 20)); // a sparse file bigger than the device
            long free = rig.fs.statfs().freeBlocks();
            int len = (int) ((free + 64) * PAGE);
            MemorySegment big = rig.buffer(len);
            for (long at : new long[] {0, 64L << 20}) {
                assertThatThrownBy(() -> rig.fs.write(d, at, big)).as("write at " + at)
                        .isInstanceOf(ErrnoException.class)
                        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(28));
                assertThatThrownBy(() -> rig.fs.aioWrite(d, at, big)).as("aio write at " + at)
                        .isInstanceOf(ErrnoException.class);
                assertThat(rig.fs.getattr(ino).size()).isEqualTo(64L << 20);
                rig.guard(DioTestRig.async("reader", () -> rig.readBuffered(b, 0, PAGE)), "a read after ENOSPC");
            }
            rig.fs.setattr(ino, SetAttr.size(0));
            byte[] small = random(new Random(11), PAGE);
            rig.fs.write(d, 8L * PAGE, rig.buffer(small));
            assertThat(rig.readBuffered(b, 8L * PAGE, PAGE)).isEqualTo(small);
            rig.fs.release(b);
            rig.fs.release(d);
            rig.remount("after ENOSPC direct writes");
            OpenFile again = rig.open(ino);
            assertThat(rig.readBuffered(again, 8L * PAGE, PAGE)).isEqualTo(small);
            rig.fs.setattr(ino, SetAttr.size(0));
            rig.fs.release(again);
            rig.remount("after truncating");
            assertThat(rig.fs.statfs().freeBlocks()).as("the space is back").isGreaterThanOrEqualTo(free - 1);
        }
    }

    /**
     * A failed extending direct write must not keep the blocks it allocated past EOF: they are
     * invisible (past i_size), hold no data, and nothing but a truncate would free them (ext4
     * truncates them after a failed extending write). Here: ENOSPC on an empty file.
     */
    @Test
    void aFailedExtendingDirectWriteKeepsNoBlocksPastEof() throws Exception {
        try (DioTestRig rig = new DioTestRig("enospc-eof", 16L << 20)) {
            long ino = rig.create("f");
            OpenFile d = rig.openDirect(ino);
            long free = rig.fs.statfs().freeBlocks();
            MemorySegment big = rig.buffer((int) ((free + 64) * PAGE));
            assertThatThrownBy(() -> rig.fs.write(d, 0, big)).isInstanceOf(ErrnoException.class)
                    .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(28));
            assertThat(rig.fs.getattr(ino).size()).isZero();
            assertThat(rig.fs.getattr(ino).blocks()).as("blocks kept past EOF by the failed write").isZero();
            // all but the extent map's root, which the file keeps (as after a truncate to 0)
            assertThat(rig.fs.statfs().freeBlocks()).as("free blocks after the failed write").isEqualTo(free - 1);
            rig.fs.release(d);
        }
    }
}
