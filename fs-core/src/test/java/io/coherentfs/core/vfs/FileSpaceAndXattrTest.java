package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.FsRig.n;
import static io.coherentfs.core.vfs.Errnos.errno;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/** fallocate modes, SEEK_DATA/SEEK_HOLE and extended attributes, against a real image. */
class FileSpaceAndXattrTest {
    private static final int B = 4096;
    private static final int ENODATA = 61, EEXIST = 17, ERANGE = 34, EOPNOTSUPP = 95, ENXIO = 6, ENOSPC = 28,
            E2BIG = 7, EPERM = 1, EBADF = 9, EINVAL = 22;
    private FsRig rig;
    private Vfs fs;
    private OpenFile f;
    private long ino;

    @BeforeEach
    void setUp(TestInfo info) throws Exception {
        rig = new FsRig("space-" + info.getTestMethod().orElseThrow().getName(), 64L << 20);
        fs = rig.fs;
        ino = fs.mknod(Vfs.ROOT, n("f"), 0644, 0, Caller.ROOT).ino();
        f = fs.open(ino, OpenFile.O_RDWR);
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
    }


    private byte[] read(long offset, int length) throws Exception {
        byte[] b = new byte[length];
        int n = fs.read(f, offset, MemorySegment.ofArray(b));
        return Arrays.copyOf(b, n);
    }

    private void fill(long offset, int length, int value) throws Exception {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        fs.write(f, offset, MemorySegment.ofArray(b));
    }

    @Test
    void fallocateAllocatesUnwrittenBlocksThatReadAsZerosAndCountAsHoles() throws Exception {
        long freeBefore = fs.statfs().availableBlocks();
        fs.fallocate(f, 0, 0, 10 * B);
        assertThat(fs.getattr(ino).size()).isEqualTo(10 * B);
        assertThat(fs.getattr(ino).blocks()).isEqualTo(10 * 8);
        assertThat(fs.statfs().availableBlocks()).isLessThanOrEqualTo(freeBefore - 10);
        assertThat(read(0, 10 * B)).containsOnly(0);
        fill(3 * B + 100, 10, 7);
        byte[] all = read(0, 10 * B);
        for (int i = 0; i < all.length; i++) {
            assertThat(all[i]).as("byte " + i).isEqualTo(i >= 3 * B + 100 && i < 3 * B + 110 ? (byte) 7 : 0);
        }
        assertThat(fs.getattr(ino).blocks()).as("writing into unwritten blocks allocates nothing").isEqualTo(10 * 8);
        assertThat(fs.lseek(f, 0, Vfs.SEEK_DATA)).isEqualTo(3 * B);
        assertThat(fs.lseek(f, 3 * B, Vfs.SEEK_HOLE)).isEqualTo(4 * B);
        rig.reopen();
        fs = rig.fs;
        f = fs.open(ino, OpenFile.O_RDWR);
        assertThat(read(3 * B + 100, 10)).containsOnly(7);
        assertThat(read(0, B)).containsOnly(0);
    }

    @Test
    void keepSizeAllocatesPastTheEndWithoutGrowingTheFile() throws Exception {
        fill(0, 100, 1);
        fs.fallocate(f, Vfs.FALLOC_FL_KEEP_SIZE, 0, 8 * B);
        assertThat(fs.getattr(ino).size()).isEqualTo(100);
        assertThat(fs.getattr(ino).blocks()).isEqualTo(8 * 8);
    }

    @Test
    void punchHoleFreesWholeBlocksAndZeroesTheEdges() throws Exception {
        fill(0, 8 * B, 5);
        fs.fallocate(f, Vfs.FALLOC_FL_PUNCH_HOLE | Vfs.FALLOC_FL_KEEP_SIZE, B + 10, 4 * B);
        byte[] all = read(0, 8 * B);
        for (int i = 0; i < all.length; i++) {
            boolean punched = i >= B + 10 && i < 5 * B + 10;
            assertThat(all[i]).as("byte " + i).isEqualTo(punched ? (byte) 0 : 5);
        }
        assertThat(fs.getattr(ino).size()).isEqualTo(8 * B);
        assertThat(fs.getattr(ino).blocks()).as("blocks 2..4 freed").isEqualTo(5 * 8);
        assertThat(fs.lseek(f, 0, Vfs.SEEK_HOLE)).isEqualTo(2 * B);
        assertThat(fs.lseek(f, 2 * B, Vfs.SEEK_DATA)).isEqualTo(5 * B);
        assertThat(fs.lseek(f, 7 * B, Vfs.SEEK_HOLE)).as("the end is a hole").isEqualTo(8 * B);
        assertThat(errno(() -> fs.lseek(f, 8 * B, Vfs.SEEK_DATA))).isEqualTo(ENXIO);
    }

    @Test
    void zeroRangeZeroesAndCanGrowTheFile() throws Exception {
        fill(0, 4 * B, 9);
        fs.fallocate(f, Vfs.FALLOC_FL_ZERO_RANGE, 100, 5 * B);
        assertThat(fs.getattr(ino).size()).isEqualTo(5 * B + 100);
        byte[] all = read(0, 5 * B + 100);
        for (int i = 0; i < all.length; i++) {
            assertThat(all[i]).as("byte " + i).isEqualTo(i < 100 ? (byte) 9 : 0);
        }
    }

    @Test
    void unsupportedOrInvalidModesAreRefusedAsLinuxDoes() throws Exception {
        assertThat(errno(() -> fs.fallocate(f, Vfs.FALLOC_FL_PUNCH_HOLE, 0, B))).isEqualTo(EOPNOTSUPP);
        assertThat(errno(() -> fs.fallocate(f, 0x08 /* COLLAPSE_RANGE */, 0, B))).isEqualTo(EOPNOTSUPP);
        assertThat(errno(() -> fs.fallocate(f, 0x20 /* INSERT_RANGE */, 0, B))).isEqualTo(EOPNOTSUPP);
        assertThat(errno(() -> fs.fallocate(f, 0, 0, 0))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.fallocate(f, 0, 0, 1L << 30))).isEqualTo(ENOSPC);
        OpenFile ro = fs.open(ino, OpenFile.O_RDONLY);
        assertThat(errno(() -> fs.fallocate(ro, 0, 0, B))).isEqualTo(EBADF);
        assertThat(errno(() -> fs.lseek(f, 0, Vfs.SEEK_DATA))).as("empty file").isEqualTo(ENXIO);
    }

    @Test
    void xattrsSetGetListReplaceRemoveAndSurviveRemount() throws Exception {
        fs.setxattr(ino, n("user.small"), n("v1"), 0);
        byte[] big = new byte[3000];
        Arrays.fill(big, (byte) 'x');
        fs.setxattr(ino, n("trusted.big"), big, 0);
        fs.setxattr(ino, n("user.empty"), new byte[0], 0);
        assertThat(errno(() -> fs.setxattr(ino, n("user.small"), n("v2"), Vfs.XATTR_CREATE))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.setxattr(ino, n("user.none"), n("v2"), Vfs.XATTR_REPLACE))).isEqualTo(ENODATA);
        fs.setxattr(ino, n("user.small"), n("v2"), Vfs.XATTR_REPLACE);
        rig.reopen();
        fs = rig.fs;
        assertThat(fs.getxattr(ino, n("user.small"))).isEqualTo(n("v2"));
        assertThat(fs.getxattr(ino, n("trusted.big"))).isEqualTo(big);
        assertThat(fs.getxattr(ino, n("user.empty"))).isEmpty();
        assertThat(fs.listxattr(ino)).extracting(String::new)
                .containsExactlyInAnyOrder("user.small", "trusted.big", "user.empty");
        fs.removexattr(ino, n("trusted.big"));
        assertThat(errno(() -> fs.getxattr(ino, n("trusted.big")))).isEqualTo(ENODATA);
        assertThat(errno(() -> fs.removexattr(ino, n("trusted.big")))).isEqualTo(ENODATA);
    }

    @Test
    void xattrLimitsAndNamespacesAreChecked() throws Exception {
        assertThat(errno(() -> fs.setxattr(ino, n("user." + "a".repeat(251)), n("v"), 0))).isEqualTo(ERANGE);
        assertThat(errno(() -> fs.setxattr(ino, n("bogus.x"), n("v"), 0))).isEqualTo(EOPNOTSUPP);
        // no POSIX ACLs (cp -a then keeps the mode with chmod)
        assertThat(errno(() -> fs.setxattr(ino, n("system.posix_acl_access"), new byte[28], 0))).isEqualTo(EOPNOTSUPP);
        assertThat(errno(() -> fs.getxattr(ino, n("system.posix_acl_default")))).isEqualTo(EOPNOTSUPP);
        assertThat(errno(() -> fs.setxattr(ino, n("user.big"), new byte[5000], 0))).isEqualTo(ENOSPC);
        assertThat(errno(() -> fs.setxattr(ino, n("user.huge"), new byte[70000], 0))).isEqualTo(E2BIG);
        long link = fs.symlink(Vfs.ROOT, n("l"), n("f"), Caller.ROOT).ino();
        assertThat(errno(() -> fs.setxattr(link, n("user.x"), n("v"), 0))).isEqualTo(EPERM);
        fs.setxattr(link, n("trusted.x"), n("v"), 0);
        assertThat(errno(() -> fs.getxattr(ino, n("user.missing")))).isEqualTo(ENODATA);
    }

    @Test
    void anEvictedInodeTakesItsXattrsAndBlocksWithIt() throws Exception {
        fs.setxattr(ino, n("user.big"), new byte[3000], 0);
        fill(0, 64 * B, 1);
        fs.release(f);
        fs.forget(ino, 1);
        fs.sync();
        long before = fs.statfs().freeBlocks();
        fs.unlink(Vfs.ROOT, n("f"));
        fs.sync();
        assertThat(fs.statfs().freeBlocks()).isGreaterThanOrEqualTo(before + 65);
        assertThat(fs.listxattr(fs.mknod(Vfs.ROOT, n("g"), 0644, 0, Caller.ROOT).ino())).isEmpty();
        f = fs.open(fs.lookup(Vfs.ROOT, n("g")).ino(), OpenFile.O_RDWR);
    }
}
