package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.FsRig.n;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** ENOSPC: fill, delete, write again; nothing written before is lost and nothing is corrupted. */
class FullFilesystemTest {
    private static final int MIB = 1 << 20;

    private static byte[] chunk(int i) {
        byte[] b = new byte[MIB];
        Arrays.fill(b, (byte) (i + 1));
        return b;
    }

    @Test
    void fillDeleteWriteAgainAndRemount() throws Exception {
        try (FsRig rig = new FsRig("full", 24L << 20)) {
            Vfs fs = rig.fs;
            long big = fs.mknod(Vfs.ROOT, n("big"), 0644, 0, Caller.ROOT).ino();
            fs.forget(big, 1);
            OpenFile f = fs.open(big, OpenFile.O_RDWR);
            int written = 0;
            ErrnoException full = null;
            for (int i = 0; i < 64; i++) {
                try {
                    int n = fs.write(f, (long) i * MIB, MemorySegment.ofArray(chunk(i)));
                    if (n < MIB) {
                        // write(2) comes up short when space runs out part way; the next one fails
                        assertThat(n).isPositive();
                        continue;
                    }
                    written++;
                } catch (ErrnoException e) {
                    full = e;
                    break;
                }
            }
            assertThat(full).as("the device fills up").isNotNull();
            assertThat(full.errno()).isEqualTo(28);
            assertThat(written).isGreaterThan(5);
            // Everything acknowledged is intact and the filesystem still works.
            byte[] back = new byte[MIB];
            for (int i = 0; i < written; i++) {
                fs.read(f, (long) i * MIB, MemorySegment.ofArray(back));
                assertThat(back).as("chunk " + i).containsOnly((byte) (i + 1));
            }
            int next = written;
            assertThatThrownBy(() -> fs.write(f, (long) (next + 1) * MIB, MemorySegment.ofArray(chunk(0))))
                    .as("still full").isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(28));
            assertThat(fs.statfs().availableBlocks()).isLessThan(64);
            // Renaming works on a full filesystem too (libfuse 2 turns the unlink of a file still
            // open into a rename to a hidden name), and df counts the unwritten data as used.
            long usedBlocks = fs.statfs().totalBlocks() - fs.statfs().freeBlocks();
            assertThat(usedBlocks * 4096).isGreaterThan((long) written * MIB);
            fs.rename(Vfs.ROOT, n("big"), Vfs.ROOT, n(".fuse_hidden0000000100000001"), 0);
            fs.rename(Vfs.ROOT, n(".fuse_hidden0000000100000001"), Vfs.ROOT, n("big"), 0);
            fs.release(f);
            fs.sync();
            long availFull = fs.statfs().availableBlocks();
            fs.unlink(Vfs.ROOT, n("big"));   // works on a full filesystem
            // the space is back at once, as on ext4: no checkpoint or remount needed first
            assertThat(fs.statfs().availableBlocks() - availFull).isGreaterThanOrEqualTo((long) written * MIB / 4096);
            long again = fs.mknod(Vfs.ROOT, n("again"), 0644, 0, Caller.ROOT).ino();
            OpenFile g = fs.open(again, OpenFile.O_RDWR);
            for (int i = 0; i < written; i++) {
                fs.write(g, (long) i * MIB, MemorySegment.ofArray(chunk(i + 10)));
            }
            fs.release(g);
            rig.reopen();
            Vfs fs2 = rig.fs;
            OpenFile r = fs2.open(fs2.lookup(Vfs.ROOT, n("again")).ino(), OpenFile.O_RDONLY);
            for (int i = 0; i < written; i++) {
                fs2.read(r, (long) i * MIB, MemorySegment.ofArray(back));
                assertThat(back).as("rewritten chunk " + i).containsOnly((byte) (i + 11));
            }
            fs2.release(r);
        }
    }
}
