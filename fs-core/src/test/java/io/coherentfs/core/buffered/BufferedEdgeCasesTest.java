package io.coherentfs.core.buffered;

import static io.coherentfs.core.buffered.BufRig.PAGE;
import static io.coherentfs.core.buffered.BufRig.data;
import static io.coherentfs.core.buffered.BufRig.read;
import static io.coherentfs.core.buffered.BufRig.readAll;
import static io.coherentfs.core.buffered.BufRig.writeFully;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;

/** Directed edge cases of buffered IO, delayed allocation and mapped views (issue 4). */
@Timeout(60)
class BufferedEdgeCasesTest {
    private static final long IMAGE = 64L << 20;

    private static BufRig rig(TestInfo info) throws IOException {
        return new BufRig("edge-" + info.getTestMethod().orElseThrow().getName(), IMAGE, 1L << 20);
    }

    private static byte[] zeros(int n) {
        return new byte[n];
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void aPagePartlyPastEofReadsZerosPastEofThroughReadAndMapAndAfterReopen(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            byte[] d = data(ino, 0, 5000, 1);
            writeFully(rig.fs, f, 0, d);
            try (MappedView v = rig.fs.map(f)) {
                // bytes 5000..8191 of the last page: zeros, and stores there are dropped
                assertThat(BufRig.load(v, 4096, 4096)).isEqualTo(Arrays.copyOfRange(concat(d, zeros(3192)), 4096, 8192));
                BufRig.store(v, 5000, data(99, 5000, 1000, 9));
                assertThat(BufRig.load(v, 5000, 1000)).as("store past EOF inside the last page must be dropped")
                        .isEqualTo(zeros(1000));
            }
            assertThat(readAll(rig.fs, f)).isEqualTo(d);
            // extend: the old tail must read as zeros, in cache and after reopen
            rig.fs.setattr(ino, SetAttr.size(3 * PAGE));
            byte[] want = concat(d, zeros(3 * PAGE - 5000));
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            rig.fs.release(f);
            rig.reopen("partial page past EOF");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            rig.fs.release(f);
        }
    }

    @Test
    void shrinkingIntoAWrittenBackPageThenExtendingShowsZerosNotTheOldTail(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            byte[] d = data(ino, 0, 3 * PAGE, 1);
            writeFully(rig.fs, f, 0, d);
            rig.fs.fsync(f, false); // the old tail is on disk
            rig.fs.setattr(ino, SetAttr.size(PAGE + 100)); // zeroes page 1's tail in the cache only
            rig.fs.setattr(ino, SetAttr.size(5 * PAGE));
            byte[] want = concat(Arrays.copyOf(d, PAGE + 100), zeros(5 * PAGE - PAGE - 100));
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            // and after the cached pages went away (reopen writes back and drops them)
            rig.fs.release(f);
            rig.reopen("shrink then extend");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            // shrink into a page that is not cached, then extend with a write far past EOF
            rig.fs.setattr(ino, SetAttr.size(50));
            rig.fs.release(f);
            rig.reopen("shrink to 50");
            f = rig.open(ino);
            byte[] tail = data(ino, 3 * PAGE + 7, 10, 2);
            writeFully(rig.fs, f, 3 * PAGE + 7, tail);
            byte[] want2 = concat(concat(Arrays.copyOf(d, 50), zeros(3 * PAGE + 7 - 50)), tail);
            assertThat(readAll(rig.fs, f)).isEqualTo(want2);
            rig.fs.release(f);
            rig.reopen("write past EOF");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want2);
            rig.fs.release(f);
        }
    }

    @Test
    void extendingWithTruncateAfterAPartialLastPageWasWritten(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            byte[] d = data(ino, 0, 100, 1);
            writeFully(rig.fs, f, 0, d); // delalloc, not written back
            rig.fs.setattr(ino, SetAttr.size(3 * PAGE + 1));
            byte[] want = concat(d, zeros(3 * PAGE + 1 - 100));
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(3 * PAGE + 1);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            rig.fs.release(f);
            rig.reopen("truncate extend after a partial page");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            rig.fs.release(f);
        }
    }

    @Test
    void writesIntoAFallocatedRangeSurviveReopen(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            rig.fs.fallocate(f, Vfs.FALLOC_FL_KEEP_SIZE, 0, 1 << 20);
            assertThat(rig.fs.getattr(ino).size()).isZero();
            long blocksAfterFallocate = rig.fs.getattr(ino).blocks();
            byte[] d = data(ino, 100_001, 10 * PAGE + 3, 1);
            writeFully(rig.fs, f, 100_001, d);
            // the write went over unwritten blocks: no delalloc, so st_blocks does not grow
            assertThat(rig.fs.getattr(ino).blocks()).isEqualTo(blocksAfterFallocate);
            byte[] want = concat(zeros(100_001), d);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            // default mode past EOF: size grows, the new range reads as zeros
            rig.fs.fallocate(f, 0, 2 << 20, PAGE * 3 + 5);
            byte[] want2 = Arrays.copyOf(want, (2 << 20) + PAGE * 3 + 5);
            assertThat(readAll(rig.fs, f)).isEqualTo(want2);
            byte[] mid = data(ino, (2 << 20) + 10, 20, 2);
            writeFully(rig.fs, f, (2 << 20) + 10, mid);
            System.arraycopy(mid, 0, want2, (2 << 20) + 10, 20);
            rig.fs.release(f);
            rig.reopen("writes into unwritten extents");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want2);
            rig.fs.release(f);
        }
    }

    @Test
    void seekDataAndHoleSeeCachedDataThatWasNotWrittenBack(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            long at = 1 << 20;
            writeFully(rig.fs, f, at + 10, data(ino, at + 10, 10, 1)); // a hole, then one dirty page
            long size = at + 20;
            assertThat(rig.fs.lseek(f, 0, Vfs.SEEK_DATA)).isEqualTo(at);
            assertThat(rig.fs.lseek(f, 0, Vfs.SEEK_HOLE)).isEqualTo(0);
            assertThat(rig.fs.lseek(f, at + 5, Vfs.SEEK_HOLE)).isEqualTo(size);
            assertThatThrownBy(() -> rig.fs.lseek(f, size, Vfs.SEEK_DATA))
                    .satisfies(e -> assertThat(BufRig.errno(e)).isEqualTo(BufRig.ENXIO));
            // a write into an unwritten (fallocated) range, not written back: data for SEEK_DATA
            long ino2 = rig.create("g");
            OpenFile g = rig.open(ino2);
            rig.fs.fallocate(g, 0, 0, 8 * PAGE);
            assertThatThrownBy(() -> rig.fs.lseek(g, 0, Vfs.SEEK_DATA))
                    .satisfies(e -> assertThat(BufRig.errno(e)).isEqualTo(BufRig.ENXIO));
            writeFully(rig.fs, g, 5 * PAGE + 1, data(ino2, 5 * PAGE + 1, 3, 1));
            assertThat(rig.fs.lseek(g, 0, Vfs.SEEK_DATA)).isEqualTo(5 * PAGE);
            assertThat(rig.fs.lseek(g, 5 * PAGE, Vfs.SEEK_HOLE)).isEqualTo(6 * PAGE);
            // a mapped store into the unwritten range
            try (MappedView v = rig.fs.map(g)) {
                BufRig.store(v, 2 * PAGE + 9, new byte[] {7});
            }
            assertThat(rig.fs.lseek(g, 0, Vfs.SEEK_DATA)).isEqualTo(2 * PAGE);
            rig.fs.release(f);
            rig.fs.release(g);
        }
    }

    @Test
    void oAppendWritesAtTheInMemorySize(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile plain = rig.open(ino);
            OpenFile append = rig.fs.open(ino, OpenFile.O_WRONLY | OpenFile.O_APPEND);
            byte[] a = data(ino, 0, 5000, 1);
            writeFully(rig.fs, plain, 0, a); // i_size 5000, disk size still 0
            byte[] b = data(ino, 5000, 3000, 2);
            writeFully(rig.fs, append, 0, b); // offset ignored: goes to 5000
            byte[] c = data(ino, 8000, 10, 3);
            writeFully(rig.fs, append, 123, c);
            byte[] want = concat(concat(a, b), c);
            assertThat(readAll(rig.fs, plain)).isEqualTo(want);
            rig.fs.release(append);
            rig.fs.release(plain);
            rig.reopen("O_APPEND");
            OpenFile again = rig.open(ino);
            assertThat(readAll(rig.fs, again)).isEqualTo(want);
            rig.fs.release(again);
        }
    }

    @Test
    void aFileUnlinkedWhileOpenWithDirtyPagesStaysReadableAndIsFreedOnRelease(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long before = rig.fs.statfs().availableBlocks();
            long freeBefore = rig.fs.statfs().freeBlocks();
            long ino = rig.create("victim");
            OpenFile f = rig.open(ino);
            byte[] d = data(ino, 0, (3 << 20) + 17, 1);
            writeFully(rig.fs, f, 0, d);
            rig.fs.unlink(Vfs.ROOT, BufRig.n("victim"));
            assertThat(readAll(rig.fs, f)).as("data of the unlinked file, through its open file").isEqualTo(d);
            assertThat(rig.fs.statfs().availableBlocks()).isLessThan(before - (3 << 20) / PAGE + 1);
            rig.fs.release(f);
            rig.fs.sync();
            // every block of the file (delayed or written back) is free again: counted as free at once,
            // available after the journal's checkpoint
            assertThat(rig.fs.statfs().freeBlocks()).as("free blocks after the last release")
                    .isEqualTo(freeBefore);
            rig.reopen("unlinked while open");
            assertThat(rig.fs.statfs().availableBlocks()).isEqualTo(before);
            assertThatThrownBy(() -> rig.fs.lookup(Vfs.ROOT, BufRig.n("victim")))
                    .isInstanceOf(ErrnoException.NoEntryException.class);
        }
    }

    @Test
    void mappedAccessToAPageWhollyPastEofFaultsWithEfault(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            writeFully(rig.fs, f, 0, data(ino, 0, 5000, 1));
            try (MappedView v = rig.fs.map(f)) {
                assertThatThrownBy(() -> BufRig.store(v, 2 * PAGE, new byte[] {1}))
                        .satisfies(e -> assertThat(BufRig.errno(e)).isEqualTo(BufRig.EFAULT));
                assertThatThrownBy(() -> BufRig.load(v, 2 * PAGE + 5, 1))
                        .satisfies(e -> assertThat(BufRig.errno(e)).isEqualTo(BufRig.EFAULT));
                // a store that starts in the last page and runs past it: the first page's part lands, then EFAULT
                assertThatThrownBy(() -> BufRig.store(v, 4000, data(5, 4000, 5000, 5)))
                        .satisfies(e -> assertThat(BufRig.errno(e)).isEqualTo(BufRig.EFAULT));
            }
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(5000);
            byte[] got = readAll(rig.fs, f);
            assertThat(Arrays.copyOfRange(got, 4000, 5000)).isEqualTo(data(5, 4000, 1000, 5));
            rig.fs.release(f);
        }
    }

    /**
     * A mapped store that lands wholly past EOF inside the last page stores nothing, so it must
     * not leave a delayed allocation behind either (a delalloc block always has a dirty folio).
     */
    @Test
    void aDroppedMappedStorePastEofReservesNoBlock(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            rig.fs.setattr(ino, SetAttr.size(5000)); // page 1 is a hole, partly inside the file
            long avail = rig.fs.statfs().availableBlocks();
            try (MappedView v = rig.fs.map(f)) {
                BufRig.store(v, 6000, new byte[] {1, 2, 3});
            }
            rig.fs.sync();
            assertThat(rig.fs.getattr(ino).blocks()).as("st_blocks after a dropped store").isZero();
            assertThat(rig.fs.statfs().availableBlocks()).as("available blocks after a dropped store")
                    .isEqualTo(avail);
            rig.fs.release(f);
        }
    }

    /**
     * Loading an inode (first use after a mount or an eviction) whose first extent at or past
     * EOF is unwritten (fallocate KEEP_SIZE past EOF) must terminate (a regression test: {@code
     * loadLive}'s scan for written blocks past EOF once stepped with {@code map.next(e.logical())},
     * which returns {@code e} itself, and spun forever).
     */
    @Test
    @Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void loadingAnInodeWithUnwrittenBlocksPastEofTerminates(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            writeFully(rig.fs, f, 0, data(ino, 0, 100, 1));
            rig.fs.fallocate(f, Vfs.FALLOC_FL_KEEP_SIZE, 0, 16 * PAGE);
            rig.fs.release(f); // the last reference: the inode is evicted
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(data(ino, 0, 100, 1)); // loads the inode again
            rig.fs.release(f);
            rig.reopen("unwritten extent past EOF");
            assertThat(rig.fs.getattr(ino).size()).isEqualTo(100);
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(data(ino, 0, 100, 1));
            rig.fs.release(f);
        }
    }

    @Test
    void punchAndZeroRangeOverDirtyPages(TestInfo info) throws IOException {
        try (BufRig rig = rig(info)) {
            long ino = rig.create("f");
            OpenFile f = rig.open(ino);
            byte[] want = data(ino, 0, 10 * PAGE, 1);
            writeFully(rig.fs, f, 0, want);
            rig.fs.fallocate(f, Vfs.FALLOC_FL_PUNCH_HOLE | Vfs.FALLOC_FL_KEEP_SIZE, PAGE + 10, 2 * PAGE);
            Arrays.fill(want, PAGE + 10, 3 * PAGE + 10, (byte) 0);
            rig.fs.fallocate(f, Vfs.FALLOC_FL_ZERO_RANGE, 9 * PAGE + 1, 3 * PAGE);
            want = Arrays.copyOf(want, 12 * PAGE + 1);
            Arrays.fill(want, 9 * PAGE + 1, want.length, (byte) 0);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            rig.fs.release(f);
            rig.reopen("punch and zero range");
            f = rig.open(ino);
            assertThat(readAll(rig.fs, f)).isEqualTo(want);
            assertThat(read(rig.fs, f, PAGE, PAGE)).isEqualTo(Arrays.copyOfRange(want, PAGE, 2 * PAGE));
            rig.fs.release(f);
        }
    }
}
