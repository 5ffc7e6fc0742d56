package io.coherentfs.core.buffered;

import static io.coherentfs.core.buffered.BufRig.PAGE;
import static io.coherentfs.core.buffered.BufRig.data;
import static io.coherentfs.core.buffered.BufRig.n;
import static io.coherentfs.core.buffered.BufRig.read;
import static io.coherentfs.core.buffered.BufRig.writeFully;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * A random read miss reads its whole 128 KiB cluster while the page cache is less than half
 * full, and only a small window once it is (BufferedIo.readMiss).
 */
class ReadAroundTest {
    private static final int FILE_PAGES = 256;
    private static final int CLUSTER = 32;

    @Test
    void randomMissReadsItsClusterOnlyWhileTheCacheHasRoom() throws Exception {
        try (BufRig rig = new BufRig("read-around", 64L << 20, (long) 2 * CLUSTER * PAGE + 8 * PAGE)) {
            byte[] content = data(1, 0, FILE_PAGES * PAGE, 1);
            long ino = rig.fs.mknod(Vfs.ROOT, n("f"), 0644, 0, Caller.ROOT).ino();
            OpenFile w = rig.fs.open(ino, OpenFile.O_RDWR);
            writeFully(rig.fs, w, 0, content);
            rig.fs.release(w);
            rig.reopen("after writing"); // nothing cached

            OpenFile f = rig.fs.open(ino, OpenFile.O_RDONLY);
            long pageCache0 = rig.fs.pageCache().totalBytes();
            // page 70 of cluster [64, 96): the pages before it are read with it, and the rest
            int at = 70 * PAGE + 123;
            assertThat(read(rig.fs, f, at, 100)).isEqualTo(Arrays.copyOfRange(content, at, at + 100));
            assertThat(rig.fs.pageCache().totalBytes() - pageCache0).isEqualTo((long) CLUSTER * PAGE);
            // another page of that cluster is a hit
            assertThat(read(rig.fs, f, 64 * PAGE, PAGE)).isEqualTo(Arrays.copyOfRange(content, 64 * PAGE, 65 * PAGE));
            assertThat(rig.fs.pageCache().totalBytes() - pageCache0).isEqualTo((long) CLUSTER * PAGE);

            // a second cluster, still with room: [160, 192)
            assertThat(read(rig.fs, f, 181 * PAGE, PAGE)).isEqualTo(Arrays.copyOfRange(content, 181 * PAGE, 182 * PAGE));
            assertThat(rig.fs.pageCache().totalBytes() - pageCache0).isEqualTo(2L * CLUSTER * PAGE);
            // now more than half the budget is cached: a random miss reads a small window only
            long before = rig.fs.pageCache().totalBytes();
            assertThat(read(rig.fs, f, 10 * PAGE, PAGE)).isEqualTo(Arrays.copyOfRange(content, 10 * PAGE, 11 * PAGE));
            assertThat(rig.fs.pageCache().totalBytes() - before).isBetween((long) PAGE, 4L * PAGE);
            rig.fs.release(f);
        }
    }
}
