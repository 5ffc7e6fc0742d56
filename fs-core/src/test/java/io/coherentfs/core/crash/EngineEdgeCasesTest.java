package io.coherentfs.core.crash;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.Vfs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Engine bugs the crash workloads found, each reduced to a deterministic case. */
class EngineEdgeCasesTest {
    private static final JournalOptions NO_TIMERS =
            JournalOptions.DEFAULTS.withCommitInterval(Duration.ZERO).withCheckpointInterval(Duration.ZERO);

    private static byte[] n(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] filled(int length, char c) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) c);
        return b;
    }

    /**
     * A write that extends a file inside its last block overwrites that block in place; if the
     * power goes before the transaction with the new size commits, the old size comes back but
     * the block keeps the lost write's bytes past it. Truncating the file up (or writing further
     * on) then shows them: POSIX says the range between the old and the new end reads as zeros
     * (XFS zeroes it, xfs_zero_range from the old EOF; ext4 zeroes a block's tail past i_size).
     * Found by VfsCrashTest (INJECTED_FAULTS seed 505 round 4: ino 6 held byte 0xd6 of a write of
     * an earlier round at offset 171318, its old EOF, after truncate 171318 -> 176270).
     */
    @Test
    void bytesOfALostExtendingWriteDoNotComeBackWhenTheFileGrows() throws Exception {
        try (CrashRig rig = new CrashRig("stale-tail", 16L << 20, NO_TIMERS)) {
            Vfs fs = rig.fs;
            Attr a = fs.mknod(Vfs.ROOT, n("f"), 0100644, 0, Caller.ROOT);
            OpenFile f = fs.open(a.ino(), OpenFile.O_RDWR);
            fs.write(f, 0, MemorySegment.ofArray(filled(1000, 'a')));
            fs.fsync(f, false);  // 1000 bytes, durable
            fs.write(f, 1000, MemorySegment.ofArray(filled(2000, 'b')));  // size 3000 in the running transaction
            rig.faulty.flush();  // the disk wrote the data block, as it may at any time; nothing committed since
            rig.faulty.crash(new Random(1));
            fs = rig.recover(NO_TIMERS);
            assertThat(fs.getattr(a.ino()).size()).as("the extension was not committed").isEqualTo(1000);

            fs.setattr(a.ino(), SetAttr.size(4096));
            OpenFile g = fs.open(a.ino(), OpenFile.O_RDONLY);
            byte[] got = new byte[4096];
            assertThat(fs.read(g, 0, MemorySegment.ofArray(got))).isEqualTo(4096);
            assertThat(Arrays.copyOfRange(got, 0, 1000)).containsOnly((byte) 'a');
            assertThat(Arrays.copyOfRange(got, 1000, 4096)).as("bytes past the old EOF after truncate up")
                    .containsOnly((byte) 0);
        }
    }

    /** The same through a write that starts past the EOF inside the last block. */
    @Test
    void aWritePastTheEofLeavesZerosInTheGapAfterALostExtension() throws Exception {
        try (CrashRig rig = new CrashRig("stale-gap", 16L << 20, NO_TIMERS)) {
            Vfs fs = rig.fs;
            Attr a = fs.mknod(Vfs.ROOT, n("f"), 0100644, 0, Caller.ROOT);
            OpenFile f = fs.open(a.ino(), OpenFile.O_RDWR);
            fs.write(f, 0, MemorySegment.ofArray(filled(1000, 'a')));
            fs.fsync(f, false);
            fs.write(f, 1000, MemorySegment.ofArray(filled(2000, 'b')));
            rig.faulty.flush();
            rig.faulty.crash(new Random(2));
            fs = rig.recover(NO_TIMERS);

            OpenFile g = fs.open(a.ino(), OpenFile.O_RDWR);
            fs.write(g, 3500, MemorySegment.ofArray(filled(10, 'c')));
            byte[] got = new byte[3510];
            assertThat(fs.read(g, 0, MemorySegment.ofArray(got))).isEqualTo(3510);
            assertThat(Arrays.copyOfRange(got, 1000, 3500)).as("the gap between the old EOF and the write")
                    .containsOnly((byte) 0);
        }
    }

    /**
     * An extending direct write commits a disk size past the pages the cache has not written
     * back. A truncate down zeroes the new last page's tail in the cache only; if an O_DSYNC
     * direct write further on then makes the larger size durable and the power goes, the old
     * bytes past the truncated end come back from the disk. XFS zeroes and writes back from the
     * old EOF before an extending direct write (xfs_file_write_zero_eof); so must we.
     */
    @Test
    void anExtendingDirectWriteMakesTheGapBeforeItDurableFirst() throws Exception {
        try (CrashRig rig = new CrashRig("dio-extend-gap", 16L << 20, NO_TIMERS);
                Arena arena = Arena.ofConfined()) {
            Vfs fs = rig.fs;
            Attr a = fs.mknod(Vfs.ROOT, n("f"), 0100644, 0, Caller.ROOT);
            OpenFile f = fs.open(a.ino(), OpenFile.O_RDWR);
            fs.write(f, 0, MemorySegment.ofArray(filled(8192, 'a')));
            fs.fsync(f, false);  // two blocks of 'a' on disk
            fs.setattr(a.ino(), SetAttr.size(100));  // [100, 4096) zeroed in the cache only
            OpenFile d = fs.open(a.ino(), OpenFile.O_RDWR | OpenFile.O_DIRECT | OpenFile.O_DSYNC);
            MemorySegment b = arena.allocate(4096, 4096).fill((byte) 'b');
            assertThat(fs.write(d, 8192, b)).isEqualTo(4096);  // size 12288, durable before it returns
            rig.faulty.crash(new Random(3));
            fs = rig.recover(NO_TIMERS);

            OpenFile g = fs.open(a.ino(), OpenFile.O_RDONLY);
            byte[] got = new byte[12288];
            assertThat(fs.read(g, 0, MemorySegment.ofArray(got))).isEqualTo(12288);
            assertThat(Arrays.copyOfRange(got, 0, 100)).containsOnly((byte) 'a');
            assertThat(Arrays.copyOfRange(got, 100, 8192)).as("between the truncated end and the direct write")
                    .containsOnly((byte) 0);
            assertThat(Arrays.copyOfRange(got, 8192, 12288)).containsOnly((byte) 'b');
        }
    }

    /**
     * renameat2(RENAME_NOREPLACE) onto an existing name fails with EEXIST even when both names are
     * links to one inode: Linux checks NOREPLACE in do_renameat2 before vfs_rename's "same inode:
     * nothing to do". The engine returns success.
     */
    @Test
    void renameNoReplaceOntoAnotherLinkOfTheSameInodeIsEexist() throws Exception {
        try (CrashRig rig = new CrashRig("noreplace-same-inode", 16L << 20, NO_TIMERS)) {
            Vfs fs = rig.fs;
            Attr a = fs.mknod(Vfs.ROOT, n("a"), 0100644, 0, Caller.ROOT);
            fs.link(a.ino(), Vfs.ROOT, n("b"));
            assertThatThrownBy(() -> fs.rename(Vfs.ROOT, n("a"), Vfs.ROOT, n("b"), Vfs.RENAME_NOREPLACE))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(17));
            assertThat(fs.lookup(Vfs.ROOT, n("a")).ino()).isEqualTo(a.ino());
            assertThat(fs.lookup(Vfs.ROOT, n("b")).ino()).isEqualTo(a.ino());
        }
    }
}
