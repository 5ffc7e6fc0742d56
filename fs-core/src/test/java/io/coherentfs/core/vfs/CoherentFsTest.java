package io.coherentfs.core.vfs;

import static io.coherentfs.core.vfs.FsRig.n;
import static io.coherentfs.core.vfs.Errnos.errno;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.inode.InodeRecord;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

class CoherentFsTest {
    private FsRig rig;
    private Vfs fs;
    private static final Caller ME = new Caller(1000, 1000);

    @BeforeEach
    void setUp(TestInfo info) throws Exception {
        rig = new FsRig("vfs-" + info.getTestMethod().orElseThrow().getName(), 64L << 20);
        fs = rig.fs;
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
    }

    private void reopen() throws Exception {
        rig.reopen();
        fs = rig.fs;
    }



    private static final int ENOENT = 2, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOTEMPTY = 39,
            ENAMETOOLONG = 36, EBADF = 9, EPERM = 1, EFBIG = 27;

    @Test
    void rootIsADirectoryThatListsDotAndDotDot() throws Exception {
        Attr root = fs.getattr(Vfs.ROOT);
        assertThat(root.isDirectory()).isTrue();
        assertThat(root.nlink()).isEqualTo(2);
        List<DirEntry> entries = fs.readdir(Vfs.ROOT, 0, 100);
        assertThat(entries).extracting(DirEntry::nameString).containsExactly(".", "..");
        assertThat(entries.get(1).ino()).isEqualTo(Vfs.ROOT);
    }

    @Test
    void createLookupReadWriteAndEverythingSurvivesRemount() throws Exception {
        Attr dir = fs.mkdir(Vfs.ROOT, n("docs"), 0750, ME);
        Attr file = fs.mknod(dir.ino(), n("a.txt"), 0640, 0, ME);
        assertThat(file.uid()).isEqualTo(1000);
        assertThat(fs.getattr(Vfs.ROOT).nlink()).isEqualTo(3);
        OpenFile f = fs.open(file.ino(), OpenFile.O_RDWR);
        byte[] text = new byte[10_000];
        new Random(1).nextBytes(text);
        assertThat(fs.write(f, 5, MemorySegment.ofArray(text))).isEqualTo(text.length);
        fs.release(f);
        reopen();
        Attr again = fs.lookup(fs.lookup(Vfs.ROOT, n("docs")).ino(), n("a.txt"));
        assertThat(again.ino()).isEqualTo(file.ino());
        assertThat(again.size()).isEqualTo(10_005);
        assertThat(again.mode() & 07777).isEqualTo(0640);
        byte[] back = new byte[10_005];
        OpenFile r = fs.open(again.ino(), OpenFile.O_RDONLY);
        assertThat(fs.read(r, 0, MemorySegment.ofArray(back))).isEqualTo(10_005);
        assertThat(back[0]).isZero();
        assertThat(java.util.Arrays.copyOfRange(back, 5, 10_005)).isEqualTo(text);
        assertThat(fs.read(r, 10_005, MemorySegment.ofArray(new byte[10]))).isZero();
        fs.release(r);
    }

    @Test
    void holesReadAsZerosAndOverwritesKeepTheRest() throws Exception {
        Attr file = fs.mknod(Vfs.ROOT, n("sparse"), 0644, 0, ME);
        OpenFile f = fs.open(file.ino(), OpenFile.O_RDWR);
        fs.write(f, 3L << 20, MemorySegment.ofArray(new byte[] {1, 2, 3}));
        fs.write(f, 100, MemorySegment.ofArray(new byte[] {9}));
        byte[] all = new byte[(3 << 20) + 3];
        assertThat(fs.read(f, 0, MemorySegment.ofArray(all))).isEqualTo(all.length);
        for (int i = 0; i < all.length - 3; i++) {
            if (i != 100 && all[i] != 0) {
                throw new AssertionError("byte " + i + " is " + all[i]);
            }
        }
        assertThat(all[100]).isEqualTo((byte) 9);
        assertThat(all[all.length - 1]).isEqualTo((byte) 3);
        assertThat(fs.getattr(file.ino()).blocks()).as("only the written blocks are allocated").isEqualTo(2 * 8);
        fs.release(f);
    }

    @Test
    void truncateShrinksFreesAndZeroesSoAnExtendShowsNoOldBytes() throws Exception {
        Attr file = fs.mknod(Vfs.ROOT, n("t"), 0644, 0, ME);
        OpenFile f = fs.open(file.ino(), OpenFile.O_RDWR);
        byte[] ones = new byte[3 * 4096];
        java.util.Arrays.fill(ones, (byte) 1);
        fs.write(f, 0, MemorySegment.ofArray(ones));
        fs.fsync(f, false); // delayed allocation: the blocks are chosen at writeback
        long freeBefore = fs.statfs().freeBlocks();
        fs.setattr(file.ino(), SetAttr.size(5000));
        fs.setattr(file.ino(), SetAttr.size(3 * 4096));
        byte[] back = new byte[3 * 4096];
        fs.read(f, 0, MemorySegment.ofArray(back));
        for (int i = 0; i < back.length; i++) {
            assertThat(back[i]).as("byte " + i).isEqualTo(i < 5000 ? (byte) 1 : 0);
        }
        assertThat(fs.getattr(file.ino()).blocks()).isEqualTo(2 * 8);
        fs.release(f);
        rig.fs.sync();
        assertThat(fs.statfs().freeBlocks()).isGreaterThanOrEqualTo(freeBefore);
    }

    @Test
    void namespaceErrorsAreTheErrnosLinuxGives() throws Exception {
        Attr file = fs.mknod(Vfs.ROOT, n("f"), 0644, 0, ME);
        Attr dir = fs.mkdir(Vfs.ROOT, n("d"), 0755, ME);
        fs.mknod(dir.ino(), n("inner"), 0644, 0, ME);
        assertThat(errno(() -> fs.lookup(Vfs.ROOT, n("missing")))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.mknod(Vfs.ROOT, n("f"), 0644, 0, ME))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.mkdir(Vfs.ROOT, n("d"), 0755, ME))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.lookup(file.ino(), n("x")))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.mknod(file.ino(), n("x"), 0644, 0, ME))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.unlink(Vfs.ROOT, n("d")))).isEqualTo(EISDIR);
        assertThat(errno(() -> fs.rmdir(Vfs.ROOT, n("f")))).isEqualTo(ENOTDIR);
        assertThat(errno(() -> fs.rmdir(Vfs.ROOT, n("d")))).isEqualTo(ENOTEMPTY);
        assertThat(errno(() -> fs.rmdir(Vfs.ROOT, n(".")))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.mknod(Vfs.ROOT, new byte[256], 0644, 0, ME))).isEqualTo(ENAMETOOLONG);
        assertThat(errno(() -> fs.lookup(Vfs.ROOT, new byte[256]))).isEqualTo(ENAMETOOLONG);
        assertThat(errno(() -> fs.link(dir.ino(), Vfs.ROOT, n("dl")))).isEqualTo(EPERM);
        assertThat(errno(() -> fs.open(dir.ino(), OpenFile.O_RDWR))).isEqualTo(EISDIR);
        OpenFile ro = fs.open(file.ino(), OpenFile.O_RDONLY);
        assertThat(errno(() -> fs.write(ro, 0, MemorySegment.ofArray(new byte[1])))).isEqualTo(EBADF);
        assertThat(errno(() -> fs.setattr(file.ino(), SetAttr.size(1L << 50)))).isEqualTo(EFBIG);
        fs.release(ro);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("d"), dir.ino(), n("self"), 0))).isEqualTo(EINVAL);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("f"), Vfs.ROOT, n("d"), 0))).isEqualTo(EISDIR);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("f"), Vfs.ROOT, n("d"), Vfs.RENAME_NOREPLACE))).isEqualTo(EEXIST);
        assertThat(errno(() -> fs.rename(Vfs.ROOT, n("nope"), Vfs.ROOT, n("x"), 0))).isEqualTo(ENOENT);
        assertThat(errno(() -> fs.readlink(file.ino()))).isEqualTo(EINVAL);
    }

    @Test
    void unlinkRmdirLinkAndRenameVariants() throws Exception {
        Attr a = fs.mknod(Vfs.ROOT, n("a"), 0644, 0, ME);
        Attr l = fs.link(a.ino(), Vfs.ROOT, n("b"));
        assertThat(l.nlink()).isEqualTo(2);
        fs.unlink(Vfs.ROOT, n("a"));
        assertThat(fs.getattr(a.ino()).nlink()).isEqualTo(1);
        Attr d1 = fs.mkdir(Vfs.ROOT, n("d1"), 0755, ME);
        Attr d2 = fs.mkdir(Vfs.ROOT, n("d2"), 0755, ME);
        fs.rename(Vfs.ROOT, n("b"), d1.ino(), n("moved"), 0);
        assertThat(fs.lookup(d1.ino(), n("moved")).ino()).isEqualTo(a.ino());
        fs.rename(Vfs.ROOT, n("d2"), d1.ino(), n("sub"), 0);
        assertThat(fs.getattr(d1.ino()).nlink()).isEqualTo(3);
        assertThat(fs.getattr(Vfs.ROOT).nlink()).isEqualTo(3);
        assertThat(fs.lookup(d2.ino(), n("..")).ino()).isEqualTo(d1.ino());
        Attr other = fs.mknod(Vfs.ROOT, n("other"), 0600, 0, ME);
        fs.rename(Vfs.ROOT, n("other"), d1.ino(), n("moved"), Vfs.RENAME_EXCHANGE);
        assertThat(fs.lookup(d1.ino(), n("moved")).ino()).isEqualTo(other.ino());
        assertThat(fs.lookup(Vfs.ROOT, n("other")).ino()).isEqualTo(a.ino());
        fs.forget(other.ino(), 2);  // mknod and the lookup above
        fs.rename(Vfs.ROOT, n("other"), d1.ino(), n("moved"), 0);  // replaces
        assertThat(fs.lookup(d1.ino(), n("moved")).ino()).isEqualTo(a.ino());
        assertThat(errno(() -> fs.getattr(other.ino()))).as("replaced inode freed").isEqualTo(ENOENT);
        fs.rmdir(d1.ino(), n("sub"));
        assertThat(fs.getattr(d1.ino()).nlink()).isEqualTo(2);
        reopen();
        assertThat(fs.readdir(d1.ino(), 0, 10)).extracting(DirEntry::nameString).containsExactly(".", "..", "moved");
    }

    @Test
    void symlinksShortAndLong() throws Exception {
        byte[] shortTarget = n("../somewhere/else");
        byte[] longTarget = n("x/".repeat(1000));
        Attr s = fs.symlink(Vfs.ROOT, n("s"), shortTarget, ME);
        Attr l = fs.symlink(Vfs.ROOT, n("l"), longTarget, ME);
        assertThat(s.type()).isEqualTo(InodeRecord.S_IFLNK);
        assertThat(l.size()).isEqualTo(2000);
        reopen();
        assertThat(fs.readlink(s.ino())).isEqualTo(shortTarget);
        assertThat(fs.readlink(l.ino())).isEqualTo(longTarget);
    }

    @Test
    void anUnlinkedOpenFileStaysUsableUntilReleasedThenItsBlocksComeBack() throws Exception {
        Attr a = fs.mknod(Vfs.ROOT, n("open"), 0644, 0, ME);
        fs.forget(a.ino(), 1);
        OpenFile f = fs.open(a.ino(), OpenFile.O_RDWR);
        fs.write(f, 0, MemorySegment.ofArray(new byte[1 << 20]));
        fs.sync();
        long freeWhileOpen = fs.statfs().freeBlocks();
        fs.unlink(Vfs.ROOT, n("open"));
        assertThat(errno(() -> fs.lookup(Vfs.ROOT, n("open")))).isEqualTo(ENOENT);
        fs.write(f, 1 << 20, MemorySegment.ofArray(new byte[] {7}));
        byte[] one = new byte[1];
        fs.read(f, 1 << 20, MemorySegment.ofArray(one));
        assertThat(one[0]).isEqualTo((byte) 7);
        assertThat(fs.getattr(a.ino()).nlink()).isZero();
        fs.release(f);
        assertThat(errno(() -> fs.getattr(a.ino()))).isEqualTo(ENOENT);
        fs.sync();
        assertThat(fs.statfs().freeBlocks()).isGreaterThanOrEqualTo(freeWhileOpen + 256);
    }

    @Test
    void readdirCookiesResumeAcrossChanges() throws Exception {
        for (int i = 0; i < 50; i++) {
            fs.mknod(Vfs.ROOT, n("f" + i), 0644, 0, ME);
        }
        List<DirEntry> first = fs.readdir(Vfs.ROOT, 0, 20);
        assertThat(first).hasSize(20);
        fs.unlink(Vfs.ROOT, n(first.get(5).nameString().equals(".") ? "f0" : first.get(5).nameString()));
        fs.mknod(Vfs.ROOT, n("late"), 0644, 0, ME);
        java.util.Set<String> seen = new java.util.HashSet<>();
        first.forEach(e -> seen.add(e.nameString()));
        long cookie = first.get(first.size() - 1).nextCookie();
        while (true) {
            List<DirEntry> more = fs.readdir(Vfs.ROOT, cookie, 7);
            if (more.isEmpty()) {
                break;
            }
            for (DirEntry e : more) {
                assertThat(seen.add(e.nameString())).as("no entry twice: " + e.nameString()).isTrue();
            }
            cookie = more.get(more.size() - 1).nextCookie();
        }
        for (int i = 0; i < 50; i++) {
            String name = "f" + i;
            if (!name.equals(first.get(5).nameString())) {
                assertThat(seen).contains(name);
            }
        }
    }

    @Test
    void setattrChangesModeOwnerAndTimes() throws Exception {
        Attr a = fs.mknod(Vfs.ROOT, n("m"), 04755, 0, ME);
        Attr changed = fs.setattr(a.ino(), SetAttr.owner(2000, null));
        assertThat(changed.uid()).isEqualTo(2000);
        assertThat(changed.mode() & 04000).as("chown clears setuid").isZero();
        Attr moded = fs.setattr(a.ino(), SetAttr.mode(0600));
        assertThat(moded.mode()).isEqualTo(InodeRecord.S_IFREG | 0600);
        io.coherentfs.core.inode.Timespec t = new io.coherentfs.core.inode.Timespec(-5, 7);
        Attr timed = fs.setattr(a.ino(), SetAttr.times(t, t));
        assertThat(timed.mtime()).isEqualTo(t);
        assertThat(timed.atime()).isEqualTo(t);
        reopen();
        assertThat(fs.getattr(a.ino()).mtime()).isEqualTo(t);
    }

    @Test
    void setgidDirectoriesPassTheirGroupOn() throws Exception {
        Attr d = fs.mkdir(Vfs.ROOT, n("shared"), 02775, new Caller(1000, 500));
        Attr f = fs.mknod(d.ino(), n("f"), 0644, 0, new Caller(1001, 1001));
        Attr sub = fs.mkdir(d.ino(), n("sub"), 0755, new Caller(1001, 1001));
        assertThat(f.gid()).isEqualTo(500);
        assertThat(sub.gid()).isEqualTo(500);
        assertThat(sub.mode() & 02000).isNotZero();
    }

    @Test
    void readsUpdateTheAccessTimeAsRelatimeSays() throws Exception {
        Attr a = fs.mknod(Vfs.ROOT, n("atime"), 0644, 0, ME);
        OpenFile f = fs.open(a.ino(), OpenFile.O_RDWR);
        fs.write(f, 0, MemorySegment.ofArray(new byte[] {1}));
        io.coherentfs.core.inode.Timespec old = new io.coherentfs.core.inode.Timespec(1_000, 0);
        fs.setattr(a.ino(), SetAttr.times(old, null));
        fs.read(f, 0, MemorySegment.ofArray(new byte[1]));
        io.coherentfs.core.inode.Timespec afterFirst = fs.getattr(a.ino()).atime();
        assertThat(afterFirst).as("atime older than mtime: updated").isGreaterThan(old);
        fs.read(f, 0, MemorySegment.ofArray(new byte[1]));
        assertThat(fs.getattr(a.ino()).atime()).as("atime newer than mtime and ctime: left alone").isEqualTo(afterFirst);
        fs.release(f);
    }

    @Test
    void closingAWriteOnlyDescriptorFlushesWithoutError() throws Exception {
        Attr file = fs.mknod(Vfs.ROOT, n("wo"), 0644, 0, ME);
        OpenFile f = fs.open(file.ino(), OpenFile.O_WRONLY);
        fs.write(f, 0, MemorySegment.ofArray(new byte[] {1, 2, 3}));
        fs.flush(f); // close(2): EBADF here would fail every close of a write-only file
        fs.release(f);
        assertThatThrownBy(() -> fs.flush(f)).isInstanceOfSatisfying(ErrnoException.class,
                e -> assertThat(e.errno()).isEqualTo(9)); // released: EBADF
    }
}

