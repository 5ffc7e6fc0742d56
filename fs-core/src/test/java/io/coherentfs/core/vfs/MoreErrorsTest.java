package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.Errnos.errno;
import static io.coherentfs.core.vfs.FsRig.n;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.inode.InodeRecord;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The errors of the Vfs calls that CoherentFsTest does not reach, each as Linux returns it. */
class MoreErrorsTest {
    private static final int EPERM = 1, ENOENT = 2, EBADF = 9, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
            EFBIG = 27, ENAMETOOLONG = 36, ENOTEMPTY = 39, ENODATA = 61;
    private FsRig rig;
    private Vfs fs;
    private long file;
    private long dir;

    @BeforeEach
    void setUp() throws Exception {
        rig = new FsRig("more-errors", 32L << 20);
        fs = rig.fs;
        file = fs.mknod(Vfs.ROOT, n("file"), 0644, 0, Caller.ROOT).ino();
        dir = fs.mkdir(Vfs.ROOT, n("dir"), 0755, Caller.ROOT).ino();
        fs.mknod(dir, n("inside"), 0644, 0, Caller.ROOT);
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
    }

    @Test
    void directoryCallsOnFilesAndFileCallsOnDirectories() throws Exception {
        assertThat(errno(() -> fs.readdir(file, 0, 10))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.mkdir(file, n("x"), 0755, Caller.ROOT))).isEqualTo(ENOTDIR);
        OpenFile d = fs.open(dir, OpenFile.O_RDONLY);
        assertThat(errno(() -> fs.read(d, 0, MemorySegment.ofArray(new byte[1])))).isEqualTo(EISDIR);
        assertThat(errno(() -> fs.setattr(dir, SetAttr.size(0)))).isEqualTo(EISDIR);
        fs.release(d);
    }

    @Test
    void creationArgumentsAreChecked() throws Exception {
        assertThat(errno(() -> fs.mknod(Vfs.ROOT, n("d"), InodeRecord.S_IFDIR | 0755, 0, Caller.ROOT))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.symlink(Vfs.ROOT, n("s"), new byte[0], Caller.ROOT))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.symlink(Vfs.ROOT, n("s"), new byte[4096], Caller.ROOT))).isEqualTo(ENAMETOOLONG);
        assertThat(errno(() -> fs.mknod(Vfs.ROOT, n("a/b"), 0644, 0, Caller.ROOT))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.mknod(Vfs.ROOT, n(".."), 0644, 0, Caller.ROOT))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.link(file, Vfs.ROOT, n("dir")))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.mknod(404, n("x"), 0644, 0, Caller.ROOT))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.getattr(404))).isEqualTo(ENOENT);
        long fifo = fs.mknod(Vfs.ROOT, n("fifo"), InodeRecord.S_IFIFO | 0600, 0, Caller.ROOT).ino();
        assertThat(fs.getattr(fifo).type()).isEqualTo(InodeRecord.S_IFIFO);
        long dev = fs.mknod(Vfs.ROOT, n("null"), InodeRecord.S_IFCHR | 0666, (1L << 32) | 3, Caller.ROOT).ino();
        assertThat(fs.getattr(dev).rdev()).isEqualTo((1L << 32) | 3);
    }

    @Test
    void renameRefusesWhatLinuxRefuses() throws Exception {
        long other = fs.mkdir(Vfs.ROOT, n("other"), 0755, Caller.ROOT).ino();
        fs.mknod(other, n("x"), 0644, 0, Caller.ROOT);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("dir"), Vfs.ROOT, n("other"), 0))).isEqualTo(ENOTEMPTY);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("dir"), Vfs.ROOT, n("file"), 0))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("file"), Vfs.ROOT, n("nothing"), Vfs.RENAME_EXCHANGE))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("file"), Vfs.ROOT, n("x"), 4))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("file"), Vfs.ROOT, n("x"),
                Vfs.RENAME_EXCHANGE | Vfs.RENAME_NOREPLACE))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("file"), file, n("x"), 0))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("dir"), dir, n("x"), Vfs.RENAME_EXCHANGE))).isEqualTo(ENOENT);
        fs.rename(Vfs.ROOT, n("dir"), Vfs.ROOT, n("dir"), 0);  // onto itself: nothing happens
        assertThat(fs.lookup(Vfs.ROOT, n("dir")).ino()).isEqualTo(dir);
    }

    @Test
    void fileHandleAndRangeErrors() throws Exception {
        OpenFile f = fs.open(file, OpenFile.O_RDWR);
        assertThat(errno(() -> fs.lseek(f, 0, 0 /* SEEK_SET */))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.write(f, CoherentFs.MAX_FILE_SIZE, MemorySegment.ofArray(new byte[1])))).isEqualTo(EFBIG);
        assertThat(errno(() -> fs.read(f, -1, MemorySegment.ofArray(new byte[1])))).isEqualTo(EINVAL);
        fs.release(f);
        fs.release(f);  // a second release is harmless
        assertThat(errno(() -> fs.write(f, 0, MemorySegment.ofArray(new byte[1])))).isEqualTo(EBADF);
        OpenFile wo = fs.open(file, OpenFile.O_WRONLY);
        assertThat(errno(() -> fs.read(wo, 0, MemorySegment.ofArray(new byte[1])))).isEqualTo(EBADF);
        fs.release(wo);
        assertThat(errno(() -> fs.setxattr(file, n("user.a"), n("v"), 4))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.removexattr(file, n("user.none")))).isEqualTo(ENODATA);
        fs.forget(file, 1);
        fs.unlink(Vfs.ROOT, n("file"));
        assertThat(errno(() -> fs.open(file, OpenFile.O_RDONLY))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.link(dir, Vfs.ROOT, n("dl")))).isEqualTo(EPERM);
    }
}
