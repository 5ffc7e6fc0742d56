package io.coherentfs.core.fsck;

import io.coherentfs.core.format.TreeShapes;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.format.Layout;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * fsck against real images: a populated filesystem checks clean; then each kind of damage is
 * planted on the image — metadata changes through a journal transaction (consistent checksums),
 * checksum damage by raw device writes — and fsck must find it, repair what it should, and a
 * second run must be clean.
 */
class FsckTest {
    private static final long SIZE = 32L << 20;
    private static final Caller ME = new Caller(1000, 1000);

    private Path image;
    /** Inode numbers of what {@link #populate} made. */
    private long dirA;
    private long dirB;
    private long bigFile;
    private long smallFile;
    private long emptyFile;

    @BeforeEach
    void setUp(TestInfo info) throws IOException {
        image = Path.of("target/test-images/fsck-" + info.getTestMethod().orElseThrow().getName() + ".img")
                .toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, SIZE);
        try (DirectDevice device = DirectDevice.open(image)) {
            CoherentFs.mkfs(device, "fsck-test", UUID.randomUUID(), Caller.ROOT);
            try (CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
                populate(fs);
            }
        }
    }

    private static byte[] n(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void write(Vfs fs, long ino, long offset, int length, int seed) throws IOException {
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++) {
            data[i] = (byte) (i * 31 + seed);
        }
        OpenFile f = fs.open(ino, OpenFile.O_RDWR);
        fs.write(f, offset, MemorySegment.ofArray(data));
        fs.release(f);
    }

    /** Directories, files with data, a hole, hard links, short and long symlinks, a fifo. */
    private void populate(Vfs fs) throws IOException {
        dirA = fs.mkdir(Vfs.ROOT, n("a"), 0755, ME).ino();
        dirB = fs.mkdir(dirA, n("b"), 0755, ME).ino();
        fs.mkdir(dirB, n("c"), 0700, ME);
        bigFile = fs.mknod(Vfs.ROOT, n("big"), InodeRecord.S_IFREG | 0644, 0, ME).ino();
        write(fs, bigFile, 0, 300_000, 1);
        write(fs, bigFile, 1 << 20, 5000, 2); // past a hole
        smallFile = fs.mknod(dirA, n("small"), InodeRecord.S_IFREG | 0600, 0, ME).ino();
        write(fs, smallFile, 0, 10, 3);
        emptyFile = fs.mknod(dirB, n("empty"), InodeRecord.S_IFREG | 0600, 0, ME).ino();
        fs.link(bigFile, dirB, n("big-link"));
        fs.link(bigFile, Vfs.ROOT, n("big-link2"));
        fs.symlink(Vfs.ROOT, n("short"), n("a/small"), ME);
        fs.symlink(dirA, n("long"), n("x".repeat(300)), ME);
        fs.mknod(dirA, n("fifo"), InodeRecord.S_IFIFO | 0644, 0, ME);
        for (int i = 0; i < 40; i++) {
            long f = fs.mknod(dirB, n("many-" + i), InodeRecord.S_IFREG | 0644, 0, ME).ino();
            if (i % 4 == 0) {
                write(fs, f, 0, 4096 * (1 + i % 3), i);
            }
        }
        fs.setxattr(smallFile, n("user.small"), n("value"), 0);
        fs.setxattr(dirA, n("trusted.big"), new byte[3000], 0);  // value out of line, in a block of its own
        long gone = fs.mknod(dirA, n("gone"), InodeRecord.S_IFREG | 0644, 0, ME).ino();
        fs.setxattr(gone, n("user.goes"), new byte[1000], 0);
        write(fs, gone, 0, 9000, 9);
        fs.unlink(dirA, n("gone"));
    }

    private FsckReport fsck(boolean readOnly) {
        List<String> progress = new ArrayList<>();
        FsckReport r = Fsck.run(image, new Fsck.Options(readOnly, progress::add));
        assertThat(progress).anyMatch(l -> l.startsWith("Pass 0"));
        return r;
    }

    private static String text(FsckReport r) {
        return String.join("\n", r.lines());
    }

    /** Finds it read-only (exit 4, nothing written), repairs it (exit 1), then a run is clean. */
    private void expectRepaired(String... fragments) throws IOException {
        byte[] before = Files.readAllBytes(image);
        FsckReport ro = fsck(true);
        assertThat(ro.exitCode()).as(text(ro)).isEqualTo(Fsck.UNCORRECTED);
        assertThat(text(ro)).contains(fragments);
        assertThat(Files.readAllBytes(image)).as("a read-only check writes nothing").isEqualTo(before);

        FsckReport fix = fsck(false);
        assertThat(fix.exitCode()).as(text(fix)).isEqualTo(Fsck.CORRECTED);
        assertThat(fix.problems()).allMatch(p -> p.status() == Problem.Status.REPAIRED, text(fix));
        assertThat(fix.remaining()).isEmpty();

        FsckReport again = fsck(false);
        assertThat(again.exitCode()).as(text(again)).isEqualTo(Fsck.CLEAN);
    }

    /** Finds it in both modes and leaves it (exit 4). */
    private void expectUnrepairable(String... fragments) {
        FsckReport ro = fsck(true);
        assertThat(ro.exitCode()).as(text(ro)).isEqualTo(Fsck.UNCORRECTED);
        assertThat(text(ro)).contains(fragments);
        FsckReport fix = fsck(false);
        assertThat(fix.exitCode()).as(text(fix)).isEqualTo(Fsck.UNCORRECTED);
        assertThat(text(fix)).contains(fragments);
    }

    // ---- planting damage --------------------------------------------------------------------------

    @FunctionalInterface
    interface Plant {
        void apply(MetaStore meta, RepairContext ctx, MetaOp op) throws IOException;
    }

    /** Changes metadata in one journal transaction, as the engine would (checksums stay right). */
    private void plant(Plant plant) throws IOException {
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool();
                MetaStore meta = MetaStore.mount(device, pool, JournalOptions.DEFAULTS, false)) {
            RepairContext ctx = new RepairContext(meta);
            try (MetaOp op = meta.begin(64)) {
                plant.apply(meta, ctx, op);
            }
        }
    }

    private Superblock superblock() throws IOException {
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool()) {
            return MetaStore.readSuperblock(device, pool);
        }
    }

    /** Flips one byte of a block on the raw device. */
    private void flipByte(long block, int offset) throws IOException {
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer buf = pool.allocate(Layout.BLOCK_SIZE)) {
            device.read(block * Layout.BLOCK_SIZE, buf.segment());
            byte b = buf.segment().get(ValueLayout.JAVA_BYTE, offset);
            buf.segment().set(ValueLayout.JAVA_BYTE, offset, (byte) (b ^ 0x5a));
            device.write(block * Layout.BLOCK_SIZE, buf.segment());
            device.flush();
        }
    }

    private static InodeRecord record(RepairContext ctx, MetaOp op, long ino) throws IOException {
        return RepairContext.load(ctx.inodes(op), ino);
    }

    private static List<ExtentMap.Extent> extents(RepairContext ctx, MetaOp op, long ino) throws IOException {
        InodeRecord r = record(ctx, op, ino);
        return new ExtentMap(BTree.open(op, ExtentMap.SPEC, ino, r.extentRoot(), root -> {
            throw new AssertionError("read-only");
        })).all();
    }

    // ---- tests -----------------------------------------------------------------------------------

    @Test
    void populatedFilesystemIsClean() {
        FsckReport ro = fsck(true);
        assertThat(ro.exitCode()).as(text(ro)).isEqualTo(Fsck.CLEAN);
        assertThat(ro.problems()).isEmpty();
        FsckReport rw = fsck(false);
        assertThat(rw.exitCode()).as(text(rw)).isEqualTo(Fsck.CLEAN);
        assertThat(rw.summary()).contains("fsck-test");
    }

    @Test
    void crashWithAnUnlinkedOpenFileAndAJournalToReplayIsClean() throws IOException {
        Path crashed = image.resolveSibling(image.getFileName() + ".crash");
        JournalOptions slow = JournalOptions.DEFAULTS.withCommitInterval(Duration.ofHours(1))
                .withCheckpointInterval(Duration.ofHours(1));
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, new CoherentFs.Options(false, slow))) {
            long doomed = fs.mknod(Vfs.ROOT, n("open-unlinked"), InodeRecord.S_IFREG | 0644, 0, ME).ino();
            write(fs, doomed, 0, 50_000, 7);
            OpenFile f = fs.open(doomed, OpenFile.O_RDWR);
            fs.unlink(Vfs.ROOT, n("open-unlinked"));
            fs.link(smallFile, dirB, n("late-link"));
            fs.sync();
            Files.copy(image, crashed, StandardCopyOption.REPLACE_EXISTING); // the image as a power cut leaves it
            fs.release(f);
        }
        image = crashed;
        byte[] before = Files.readAllBytes(image);
        FsckReport ro = fsck(true);
        assertThat(ro.exitCode()).as(text(ro)).isEqualTo(Fsck.CLEAN);
        assertThat(text(ro)).contains("committed transaction(s)", "not cleanly unmounted");
        assertThat(Files.readAllBytes(image)).isEqualTo(before);

        FsckReport rw = fsck(false);
        assertThat(rw.exitCode()).as(text(rw)).isEqualTo(Fsck.CLEAN);
        assertThat(text(rw)).contains("replayed the journal");
        // The next mount frees the orphan; the result is clean as well.
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
            assertThat(fs.getattr(smallFile).nlink()).isEqualTo(2);
        }
        FsckReport after = fsck(true);
        assertThat(after.exitCode()).as(text(after)).isEqualTo(Fsck.CLEAN);
        Files.deleteIfExists(crashed);
    }

    @Test
    void checksumErrorInATreeNodeIsFoundAndLeftAlone() throws IOException {
        long root = superblock().direntTreeRoot();
        flipByte(root, 200);
        expectUnrepairable("directory tree", "block " + root, "checksum");
    }

    @Test
    void checksumErrorInAnExtentMapIsFound() throws IOException {
        long[] root = new long[1];
        plant((meta, ctx, op) -> root[0] = record(ctx, op, bigFile).extentRoot());
        flipByte(root[0], 100);
        FsckReport ro = fsck(true);
        assertThat(ro.exitCode()).isEqualTo(Fsck.UNCORRECTED);
        assertThat(text(ro)).contains("extent map of inode " + bigFile, "checksum");
        // Its data blocks are unknown now: fsck must not free them as "leaked".
        FsckReport fix = fsck(false);
        assertThat(fix.exitCode()).isEqualTo(Fsck.UNCORRECTED);
        assertThat(fix.problems()).noneMatch(p -> p.status() == Problem.Status.REPAIRED && p.message().contains("leaked"));
    }

    @Test
    void checksumErrorInTheBitmapIsRepairedByRebuildingIt() throws IOException {
        Superblock sb = superblock();
        flipByte(sb.layout().bitmapStart(), 1000);
        expectRepaired("free-space bitmap", "block " + sb.layout().bitmapStart());
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
            assertThat(fs.getattr(bigFile).size()).isEqualTo((1 << 20) + 5000);
        }
    }

    @Test
    void damagedBackupSuperblockIsRewritten() throws IOException {
        flipByte(superblock().layout().backupSuperblock(), 300);
        expectRepaired("backup superblock", "checksum");
    }

    @Test
    void damagedPrimarySuperblockIsRewrittenFromTheBackup() throws IOException {
        flipByte(0, 500);
        expectRepaired("primary superblock", "checksum");
        assertThat(superblock().label()).isEqualTo("fsck-test");
    }

    @Test
    void referencedButFreeBlockIsMarkedInUse() throws IOException {
        long[] block = new long[1];
        plant((meta, ctx, op) -> {
            block[0] = extents(ctx, op, smallFile).getFirst().physical();
            op.freeExtent(block[0], 1); // the bitmap now says free while the file still points at it
        });
        expectRepaired("block " + block[0] + ": in use but marked free");
    }

    @Test
    void blockSharedByTwoFilesIsReportedAsCrossLinked() throws IOException {
        plant((meta, ctx, op) -> {
            long shared = extents(ctx, op, smallFile).getFirst().physical();
            long[] root = new long[1];
            BTree t = BTree.create(op, ExtentMap.SPEC, emptyFile, -1, r -> root[0] = r);
            new ExtentMap(t).insert(new ExtentMap.Extent(0, shared, 1, 0));
            ctx.changeInode(op, emptyFile, b -> {
                b.extentRoot = t.root();
                b.size = 4096;
                b.blocks = 1;
            });
        });
        expectUnrepairable("inode " + emptyFile, "cross-linked");
    }

    @Test
    void wrongLinkCountIsCorrected() throws IOException {
        plant((meta, ctx, op) -> ctx.changeInode(op, bigFile, b -> b.nlink++));
        plant((meta, ctx, op) -> ctx.changeInode(op, dirA, b -> b.nlink = 7));
        expectRepaired("inode " + bigFile + " (regular file) has link count 4, should be 3",
                "inode " + dirA + " (directory) has link count 7, should be 3");
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
            assertThat(fs.getattr(bigFile).nlink()).isEqualTo(3);
            assertThat(fs.getattr(dirA).nlink()).isEqualTo(3);
        }
    }

    @Test
    void orphanNotOnTheOrphanTreeIsQueuedAndFreedByTheNextMount() throws IOException {
        plant((meta, ctx, op) -> {
            BTree dirents = ctx.dirents(op);
            long hash = DirentCodec.nameHash(n("small"));
            dirents.delete(DirentCodec.key(dirA, DirentCodec.position(hash, 0)));
            ctx.changeInode(op, smallFile, b -> b.nlink = 0);
        });
        expectRepaired("inode " + smallFile + " (regular file) has no links and is not on the orphan tree");
        long freeBefore;
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
            freeBefore = fs.statfs().freeBlocks();
        }
        FsckReport after = fsck(true);
        assertThat(after.exitCode()).as(text(after)).isEqualTo(Fsck.CLEAN);
        assertThat(freeBefore).isPositive();
    }

    @Test
    void orphanEntryOfALinkedInodeIsRemoved() throws IOException {
        plant((meta, ctx, op) -> ctx.orphans(op).insert(TreeShapes.inoKey(bigFile), new byte[0]));
        expectRepaired("inode " + bigFile + " (regular file) is on the orphan tree but has 3 link(s)");
        try (DirectDevice device = DirectDevice.open(image);
                CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
            assertThat(fs.getattr(bigFile).size()).isEqualTo((1 << 20) + 5000); // not reaped
        }
    }

    @Test
    void leakedBlockIsFreed() throws IOException {
        long[] leaked = new long[1];
        plant((meta, ctx, op) -> leaked[0] = op.allocateData(4000, 3).start());
        expectRepaired("blocks " + leaked[0] + "..", "(leaked)");
    }

    @Test
    void entryNamingAMissingInodeIsRemovedAndWrongTypeIsFixed() throws IOException {
        plant((meta, ctx, op) -> {
            BTree dirents = ctx.dirents(op);
            byte[] name = n("ghost");
            dirents.insert(DirentCodec.key(dirA, DirentCodec.position(DirentCodec.nameHash(name), 0)),
                    DirentCodec.value(999_999, InodeRecord.S_IFREG >> 12, name));
            byte[] small = n("small");
            dirents.insert(DirentCodec.key(dirA, DirentCodec.position(DirentCodec.nameHash(small), 0)),
                    DirentCodec.value(smallFile, InodeRecord.S_IFLNK >> 12, small));
        });
        expectRepaired("entry 'ghost' in directory " + dirA + " names inode 999999, which does not exist",
                "entry 'small' in directory " + dirA + " records type 10");
    }

    @Test
    void wrongParentOfADirectoryIsFixed() throws IOException {
        plant((meta, ctx, op) -> ctx.changeInode(op, dirB, b -> b.parent = Vfs.ROOT));
        expectRepaired("directory " + dirB + " has '..' = 1 but is listed in directory " + dirA);
    }

    @Test
    void notACoherentfsIsAnOperationalError() throws IOException {
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer zero = pool.allocate(Layout.BLOCK_SIZE)) {
            zero.segment().fill((byte) 0);
            device.write(0, zero.segment());
            device.write(SIZE - Layout.BLOCK_SIZE, zero.segment());
            device.flush();
        }
        FsckReport r = fsck(false);
        assertThat(r.exitCode()).isEqualTo(Fsck.OPERATIONAL_ERROR);
        assertThat(r.summary()).contains("no valid coherentfs superblock");
        FsckReport missing = Fsck.run(image.resolveSibling("does-not-exist.img"), Fsck.Options.READ_ONLY);
        assertThat(missing.exitCode()).isEqualTo(Fsck.OPERATIONAL_ERROR);
    }
}
