package io.coherentfs.fuse.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.engine.IoUringEngine;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.sync.RacePoints;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The invalidation after a direct write ({@link DirectWriteReplies}: FUSE_NOTIFY_INVAL_INODE of
 * the written range before the reply), on a real mount served in this JVM. The kernel drops its
 * cached pages of the range before it sends a direct WRITE (DIRECT_IO_ALLOW_MMAP), but with
 * FUSE_ASYNC_DIO not after an asynchronous one completes: a buffered read that re-caches the
 * range while the WRITE is on its way caches the old bytes, and keeps them.
 *
 * <p>The interleaving, through a race point in the daemon: an io_uring O_DIRECT write of 'B'
 * reaches the daemon and stops before the engine; a buffered read of the page then caches 'A'
 * in the kernel; the write goes on and completes. With the invalidation a later buffered read
 * sees 'B'; without it ({@code unsafe_no_direct_write_invalidation}) the negative run asserts
 * the stale 'A'.
 */
class DirectWriteInvalidationTest {
    private static final int PAGE = InProcessMount.PAGE;

    @TempDir
    Path dir;

    @Test
    void aBufferedReadDuringAnAsyncDirectWriteLeavesNoStalePage() throws Exception {
        assertThat(readAfterAsyncDirectWrite(true)).isEqualTo(InProcessMount.fill('B', PAGE));
    }

    @Test
    void withoutTheInvalidationTheReCachedOldPageStays() throws Exception {
        assertThat(readAfterAsyncDirectWrite(false)).isEqualTo(InProcessMount.fill('A', PAGE));
    }

    private byte[] readAfterAsyncDirectWrite(boolean invalidate) throws Exception {
        try (RacePoints race = RacePoints.armable();
                InProcessMount m = new InProcessMount(dir, Map.of("f", InProcessMount.fill('A', 16 * PAGE)),
                        session -> {
                            session.directWriteInvalidation(invalidate);
                            session.racePoints(race);
                        });
                Arena arena = Arena.ofShared();
                IoUringEngine engine = IoUringEngine.start(4)) {
            String file = m.file("f").toString();
            int direct = LinuxSyscalls.open(file, LinuxSyscalls.O_RDWR | LinuxSyscalls.O_DIRECT, 0);
            int buffered = LinuxSyscalls.open(file, LinuxSyscalls.O_RDONLY, 0);
            try {
                MemorySegment page = arena.allocate(PAGE, PAGE);
                MemorySegment b = arena.allocate(PAGE, PAGE);
                b.fill((byte) 'B');
                race.arm(KernelOperations.RACE_DIRECT_WRITE);
                CompletableFuture<Long> written = new CompletableFuture<>();
                engine.submitWrite(direct, 0, b, written::complete); // io_uring: an async direct write
                race.await(KernelOperations.RACE_DIRECT_WRITE);

                LinuxSyscalls.pread(buffered, page, 0); // re-caches the page: still 'A' in the engine
                assertThat(page.get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) 'A');
                race.release(KernelOperations.RACE_DIRECT_WRITE);
                assertThat(written.get(60, TimeUnit.SECONDS)).isEqualTo(PAGE);

                LinuxSyscalls.pread(buffered, page, 0);
                return page.toArray(ValueLayout.JAVA_BYTE);
            } finally {
                race.close();
                LinuxSyscalls.close(buffered);
                LinuxSyscalls.close(direct);
            }
        }
    }
}
