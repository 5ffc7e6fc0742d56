package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.sync.RacePoints;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernel store gate ({@link KernelCacheFill}), on a real FUSE mount served in this JVM: a
 * read-around store that read the engine's bytes before a writer opened must reach the kernel
 * before the writer's first write, never after it.
 *
 * <p>The interleaving, through race points: a 4 KiB random read misses the kernel's cache, and
 * the store of its cluster stops after reading the engine's data (old bytes). Another thread
 * changes the cluster: opens the file for writing and writes new bytes in it, or truncates it
 * by path (no open handle) and grows it back, so that it reads as zeros. With the gate the
 * change's open or SETATTR is answered only after the store, so the new bytes land last;
 * without it ({@code unsafe_no_kernel_store_gate}) the change finishes first and the store,
 * released then, puts the old bytes back in the kernel's cache — a later buffered read returns
 * them though the engine holds the new ones. The negative runs assert exactly that stale read.
 */
class KernelStoreGateRaceTest {
    private static final int PAGE = InProcessMount.PAGE;
    private static final int FILE_BYTES = KernelCacheFill.CLUSTER;
    private static final long WRITTEN_AT = 16 * PAGE;
    private static final int POSIX_FADV_RANDOM = 1;

    @TempDir
    Path dir;

    @Test
    void aWriterOpenWaitsForTheStoreInFlight() throws Throwable {
        assertThat(raceAgainstStore(true, KernelStoreGateRaceTest::writeB)).isEqualTo(fill('B'));
    }

    @Test
    void withoutTheGateTheStoreOverwritesTheNewBytesInTheKernelCache() throws Throwable {
        assertThat(raceAgainstStore(false, KernelStoreGateRaceTest::writeB)).isEqualTo(fill('A'));
    }

    @Test
    void aTruncateByPathWaitsForTheStoreInFlight() throws Throwable {
        assertThat(raceAgainstStore(true, KernelStoreGateRaceTest::truncateAndRegrow)).isEqualTo(new byte[PAGE]);
    }

    @Test
    void withoutTheGateTheStoreBringsTruncatedBytesBack() throws Throwable {
        assertThat(raceAgainstStore(false, KernelStoreGateRaceTest::truncateAndRegrow)).isEqualTo(fill('A'));
    }

    /** The writer: opens the file for writing and writes a page of 'B' inside the stored cluster. */
    private static void writeB(Path file) throws Exception {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(fill('B', PAGE)), WRITTEN_AT);
        }
    }

    /** truncate(2) by path, with no open handle: to nothing, then back to its size (zeros). */
    private static void truncateAndRegrow(Path file) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle truncate = linker.downcallHandle(linker.defaultLookup().find("truncate").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, java.lang.foreign.ValueLayout.ADDRESS, JAVA_LONG));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment path = arena.allocateFrom(file.toString());
            assertThat((int) truncate.invokeExact(path, 0L)).isZero();
            assertThat((int) truncate.invokeExact(path, (long) FILE_BYTES)).isZero();
        }
    }

    @FunctionalInterface
    private interface Change {
        void apply(Path file) throws Throwable;
    }

    /** Returns what a buffered read of the changed page sees after both the store and the change are done. */
    private byte[] raceAgainstStore(boolean gated, Change change) throws Throwable {
        try (RacePoints race = RacePoints.armable();
                InProcessMount m = new InProcessMount(dir, Map.of("f", fill('A', FILE_BYTES)), session -> {
                    session.storeGate(gated);
                    session.racePoints(race);
                })) {
            try {
                return race(race, m.file("f"), gated, change);
            } finally {
                race.close(); // no store thread stays stopped when the mount goes
            }
        }
    }

    private static byte[] race(RacePoints race, Path file, boolean gated, Change change) throws Throwable {
        CompletableFuture<Void> writerWaits = new CompletableFuture<>();
        race.arm(KernelCacheFill.RACE_STORE_DATA_READ);
        race.arm(KernelCacheFill.RACE_WRITER_WAITS, () -> writerWaits.complete(null));
        race.arm(KernelCacheFill.RACE_STORE_SENT, () -> { });
        int fd = LinuxSyscalls.open(file.toString(), LinuxSyscalls.O_RDONLY, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment page = arena.allocate(PAGE, PAGE);
            fadviseRandom(fd); // the kernel asks for exactly the page: a 4 KiB READ, a store
            LinuxSyscalls.pread(fd, page, 0);
            race.await(KernelCacheFill.RACE_STORE_DATA_READ); // holding the old bytes

            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                try {
                    change.apply(file);
                } catch (Throwable e) {
                    throw new IllegalStateException(e);
                }
            });
            // Gated, the change stops in front of the store (its open or SETATTR waits on the gate
            // thread); without the gate it finishes.
            CompletableFuture.anyOf(writer, writerWaits).get(60, TimeUnit.SECONDS);
            assertThat(writer.isDone()).as("the change finished while a store was in flight").isEqualTo(!gated);

            race.release(KernelCacheFill.RACE_STORE_DATA_READ);
            race.await(KernelCacheFill.RACE_STORE_SENT);
            writer.get(60, TimeUnit.SECONDS);
            LinuxSyscalls.pread(fd, page, WRITTEN_AT);
            return page.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } finally {
            LinuxSyscalls.close(fd);
        }
    }

    private static void fadviseRandom(int fd) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle fadvise = linker.downcallHandle(linker.defaultLookup().find("posix_fadvise").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
        int rc = (int) fadvise.invokeExact(fd, 0L, 0L, POSIX_FADV_RANDOM);
        assertThat(rc).isZero();
    }

    private static byte[] fill(char c) {
        return fill(c, PAGE);
    }

    private static byte[] fill(char c, int bytes) {
        return InProcessMount.fill(c, bytes);
    }
}
