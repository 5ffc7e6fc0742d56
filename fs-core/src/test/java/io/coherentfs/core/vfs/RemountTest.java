package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.Errnos.errno;
import static io.coherentfs.core.vfs.FsRig.n;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import io.coherentfs.core.meta.MetaStore;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** remount,ro and remount,rw of a live engine (what `mount -o remount` asks the daemon for). */
class RemountTest {
    private static final int LENGTH = 300_000;

    @Test
    void readOnlyWritesEverythingBackMarksCleanAndRefusesWritesUntilReadWriteAgain() throws Exception {
        byte[] data = new byte[LENGTH];
        Arrays.fill(data, (byte) 0x5a);
        try (FsRig rig = new FsRig("remount", 64L << 20)) {
            CoherentFs fs = rig.fs;
            long ino = fs.mknod(Vfs.ROOT, n("f"), 0644, 0, Caller.ROOT).ino();
            OpenFile f = fs.open(ino, OpenFile.O_RDWR);
            fs.write(f, 0, MemorySegment.ofArray(data)); // dirty in the page cache, nothing on disk yet

            fs.remount(true);
            assertThat(fs.isReadOnly()).isTrue();
            // The image is complete and clean on disk while read-only: a second, read-only
            // engine on its own descriptor sees the file's data, and fsck finds nothing.
            try (DirectDevice side = DirectDevice.open(rig.image, DirectDevice.Options.DEFAULT.withReadOnly(true));
                    AlignedBufferPool pool = new AlignedBufferPool()) {
                assertThat(MetaStore.readSuperblock(side, pool).isClean()).isTrue();
                FsckReport report = Fsck.run(side, Fsck.Options.READ_ONLY);
                assertThat(report.exitCode()).as(String.join("\n", report.lines())).isZero();
                try (CoherentFs other = CoherentFs.open(side, CoherentFs.Options.DEFAULT.withReadOnly(true))) {
                    long otherIno = other.lookup(Vfs.ROOT, n("f")).ino();
                    OpenFile g = other.open(otherIno, OpenFile.O_RDONLY);
                    assertThat(readAll(other, g)).isEqualTo(data);
                }
            }
            assertThat(errno(() -> fs.write(f, 0, MemorySegment.ofArray(new byte[1])))).isEqualTo(Errno.EROFS.code());
            assertThat(errno(() -> fs.open(ino, OpenFile.O_RDWR))).isEqualTo(Errno.EROFS.code());
            assertThat(errno(() -> fs.mkdir(Vfs.ROOT, n("d"), 0755, Caller.ROOT))).isEqualTo(Errno.EROFS.code());
            assertThat(readAll(fs, f)).isEqualTo(data);

            fs.remount(false);
            assertThat(fs.isReadOnly()).isFalse();
            fs.write(f, LENGTH, MemorySegment.ofArray(new byte[] {1, 2, 3}));
            fs.mkdir(Vfs.ROOT, n("d"), 0755, Caller.ROOT);
            fs.release(f);
        }
        try (FsRig again = FsRig.existing("remount")) {
            FsckReport report = Fsck.run(again.device, Fsck.Options.READ_ONLY);
            assertThat(report.exitCode()).as(String.join("\n", report.lines())).isZero();
        }
    }

    @Test
    void readWriteNeedsAWritableDevice() throws Exception {
        try (FsRig rig = new FsRig("remount-ro-device", 32L << 20)) {
            rig.fs.close();
            rig.fs = null;
            try (DirectDevice ro = DirectDevice.open(rig.image, DirectDevice.Options.DEFAULT.withReadOnly(true));
                    CoherentFs fs = CoherentFs.open(ro, CoherentFs.Options.DEFAULT.withReadOnly(true))) {
                assertThat(errno(() -> fs.remount(false))).isEqualTo(Errno.EROFS.code());
                assertThat(fs.isReadOnly()).isTrue();
            }
        }
    }

    private static byte[] readAll(Vfs fs, OpenFile f) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(LENGTH + 4096);
            int got = fs.read(f, 0, buf);
            return buf.asSlice(0, got).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }
}
