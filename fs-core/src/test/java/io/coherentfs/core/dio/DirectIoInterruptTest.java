package io.coherentfs.core.dio;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.random;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * A thread interrupted during a synchronous direct write. Whatever the write returns (its count,
 * or an interrupted-IO error), it must not leave the file's add lock blocked or its direct-IO
 * count raised: afterwards a buffered read that must add pages, a truncate (which waits for
 * direct IO to drain) and another direct write all complete.
 *
 * <p>Driven: the writer is stopped at {@code dio-write.before-submit}, the device is told to
 * hold write completions (so the IO is in flight when the writer starts waiting for it), the
 * writer is interrupted (it leaves the race point at once, keeping its interrupt status),
 * submits, and waits for its IO with the interrupt pending; then the completions are released.
 */
class DirectIoInterruptTest {

    @Test
    void anInterruptedSyncDirectWriteLeavesNothingBlocked() throws Exception {
        Random r = new Random(8);
        try (DioTestRig rig = new DioTestRig("interrupt")) {
            long ino = rig.create("f");
            OpenFile b = rig.open(ino);
            OpenFile d = rig.openDirect(ino);
            byte[] old = random(r, 8 * PAGE);
            rig.fs.write(b, 0, MemorySegment.ofArray(old));
            rig.fs.fsync(b, false);
            byte[] fresh = random(r, PAGE);
            MemorySegment src = rig.buffer(fresh);

            rig.race.arm("dio-write.before-submit");
            CompletableFuture<Object> result = new CompletableFuture<>();
            Thread writer = Thread.ofPlatform().daemon().name("interrupted-writer").start(() -> {
                try {
                    result.complete(rig.fs.write(d, 0, src));
                } catch (Throwable t) {
                    result.complete(t); // an interrupted-IO error is an acceptable answer
                }
            });
            rig.race.await("dio-write.before-submit");
            rig.device.hold();
            writer.interrupt(); // wakes it from the race point with its IO still to come
            // The wait for a submitted direct write is uninterruptible (as in the kernel): the
            // write ends once its IO completes, whatever the interrupt.
            rig.device.release();
            Object answer = rig.guard(result, "the interrupted direct write");
            rig.race.release("dio-write.before-submit");

            // Nothing may stay blocked. Page 0 was invalidated by the write: reading it adds a page.
            byte[] page0 = rig.guard(DioTestRig.async("reader", () -> rig.readBuffered(b, 0, PAGE)),
                    "a buffered read of the range after an interrupted direct write (" + answer + ")");
            assertThat(Arrays.equals(page0, fresh) || Arrays.equals(page0, Arrays.copyOf(old, PAGE)))
                    .as("page 0 holds the old or the new data").isTrue();
            rig.guard(DioTestRig.async("truncate", () -> rig.fs.setattr(ino, SetAttr.size(4L * PAGE))),
                    "a truncate (waits for direct IO to drain) after an interrupted direct write");
            rig.guard(DioTestRig.async("writer-2", () -> rig.fs.write(d, PAGE, rig.buffer(fresh))),
                    "another direct write");
            rig.fs.release(b);
            rig.fs.release(d);
            rig.remount("after an interrupted direct write");
        }
    }
}
