package io.coherentfs.core.race;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.async;
import static io.coherentfs.core.dio.DioTestRig.await;
import static io.coherentfs.core.dio.DioTestRig.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.dio.DioTestRig;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.CoherenceConfig.Switch;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Seed 5 (M5, ext4's generic/418 fix): an extending direct write raises i_size in its completion
 * <em>before</em> it invalidates the page cache, so a read of the tail page racing the completion
 * never caches zeros where the write put data.
 *
 * <p>The file is 1024 bytes (written buffered, fsynced). A direct write of 1024 bytes at 1024
 * (sub-block: a read-modify-write of block 0, extending, hence synchronous and under the inode
 * lock held exclusive) is stopped at {@code dio-write.between-size-and-invalidate}: with M5 on
 * the size is already 2048 and the invalidation comes next; with M5 off the invalidation is done
 * and the size is still 1024. Page 0 is then read while the write is stopped there.
 *
 * <p>The racing read is a page fault (a load through a {@link MappedView}), not {@code read(2)}:
 * coherentfs's buffered read takes the inode's rwsem shared (ext4's does not), and the extending
 * direct write holds it exclusive until it completed, so a {@code read(2)} cannot get into the
 * window at all; a fault takes no rwsem, as on Linux, and can. Both runs have M3 off: with the
 * add lock on the fault would wait on the ADD side (the direct write holds BLOCK until after
 * its invalidation) and could not get in either.
 *
 * <p>With M5 on the fault sees size 2048 and fills page 0 with the written data (and the
 * invalidation that follows drops it anyway); with M5 off it sees size 1024, zero-fills the page
 * from 1024 on, and that page stays cached after the size grows: a buffered read then returns
 * zeros where data was written (on disk the data is right: a remount shows it).
 */
class DioExtendingWriteRaceTest {
    private static final String BETWEEN = "dio-write.between-size-and-invalidate";
    private static final int HEAD = 1024;
    private static final byte[] OLD = pattern(3, HEAD);
    private static final byte[] NEW = pattern(4, HEAD);

    /**
     * @param zerosWhereWritten bytes of {@code [1024, 2048)} that a buffered read after the write
     *     returned as zero (the written data is never zero)
     * @param faultSawZeros the racing fault's view of {@code [1024, 2048)} was all zeros
     * @param sizeAfter the file size after the write
     * @param correctAfterRemount after a remount the file reads OLD then NEW
     */
    record Outcome(int zerosWhereWritten, boolean faultSawZeros, long sizeAfter, boolean correctAfterRemount) {}

    private Outcome run(String name, CoherenceConfig coherence) throws Exception {
        try (DioTestRig rig = DioTestRig.forRace(name, coherence)) {
            long ino = rig.create("f");
            OpenFile buffered = rig.open(ino);
            OpenFile direct = rig.openDirect(ino);
            rig.fs.write(buffered, 0, MemorySegment.ofArray(OLD));
            rig.fs.fsync(buffered, false);
            MemorySegment src = rig.buffer(NEW);
            byte[] faulted = new byte[PAGE];
            try (MappedView view = rig.fs.map(buffered)) {
                rig.race.arm(BETWEEN);
                CompletableFuture<Integer> write = async("dio-writer", () -> rig.fs.write(direct, HEAD, src));
                rig.race.await(BETWEEN);
                view.load(0, MemorySegment.ofArray(faulted)); // the fault races the completion
                rig.race.release(BETWEEN);
                assertThat(await(write, "the extending direct write")).isEqualTo(HEAD);
            }
            byte[] page = rig.readBuffered(buffered, 0, 2 * HEAD);
            int zeros = 0;
            for (int i = HEAD; i < page.length; i++) {
                zeros += page[i] == 0 ? 1 : 0;
            }
            byte[] faultTail = Arrays.copyOfRange(faulted, HEAD, 2 * HEAD);
            long size = rig.fs.getattr(ino).size();
            rig.fs.release(buffered);
            rig.fs.release(direct);
            rig.reopen();
            OpenFile again = rig.open(ino);
            byte[] back = rig.readBuffered(again, 0, 4 * HEAD);
            byte[] expected = new byte[2 * HEAD];
            System.arraycopy(OLD, 0, expected, 0, HEAD);
            System.arraycopy(NEW, 0, expected, HEAD, HEAD);
            rig.fs.release(again);
            return new Outcome(zeros, Arrays.equals(faultTail, new byte[HEAD]), size, Arrays.equals(back, expected));
        }
    }

    @Test
    void sizeBeforeInvalidationNeverCachesZerosOverWrittenData() throws Exception {
        Outcome o = run("s5-m5-on", CoherenceConfig.withOff(Set.of(Switch.PAGECACHE_ADD_LOCK)));
        assertThat(o.faultSawZeros()).as("the racing fault saw the new size and the data: " + o).isFalse();
        assertThat(o.zerosWhereWritten()).as("zeros where the write put data: " + o).isZero();
        assertThat(o.sizeAfter()).isEqualTo(2 * HEAD);
        assertThat(o.correctAfterRemount()).isTrue();
    }

    /** The negative run: with M5 off the fault caches zeros over the written tail. */
    @Test
    void withM5OffZerosAppearWhereDataWasWritten() throws Exception {
        Outcome o = run("s5-m5-off", CoherenceConfig.withOff(
                EnumSet.of(Switch.PAGECACHE_ADD_LOCK, Switch.SIZE_BEFORE_INVALIDATION)));
        assertThat(o.sizeAfter()).isEqualTo(2 * HEAD);
        assertThat(o.faultSawZeros()).as("the racing fault saw the old size").isTrue();
        assertThat(o.zerosWhereWritten()).as("the whole written range reads as zeros from the cache: " + o)
                .isEqualTo(HEAD);
        assertThat(o.correctAfterRemount()).as("the disk is right; only the cache was wrong").isTrue();
    }
}
