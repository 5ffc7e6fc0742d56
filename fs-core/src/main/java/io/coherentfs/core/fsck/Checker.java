package io.coherentfs.core.fsck;

import io.coherentfs.core.format.TreeShapes;
import io.coherentfs.core.xattr.XattrCodec;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.BitmapDeviceIO;
import io.coherentfs.core.alloc.BitmapFormat;
import io.coherentfs.core.alloc.BitmapRegion;
import io.coherentfs.core.alloc.BlockAllocator;
import io.coherentfs.core.alloc.BlockBitmap;
import io.coherentfs.core.alloc.CheckReport;
import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeCursor;
import io.coherentfs.core.btree.BTreeSpec;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.dir.DirentCodec.Dirent;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.format.FilesystemSignatures;
import io.coherentfs.core.format.Layout;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.journal.Journal;
import io.coherentfs.core.journal.JournalCorruptException;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.journal.MetaCache;
import io.coherentfs.core.journal.ReplayReport;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * The checking half of fsck: reads the whole image (through an {@link OverlayDevice}, so it
 * never writes) and collects every {@link Problem}, each with its repair where a safe one exists.
 *
 * <h2>What is checked, in order</h2>
 * <ol>
 *   <li><b>Pass 0, superblocks and journal.</b> A superblock that decodes (block 0, else the
 *       backup); the journal replayed (into the overlay: what the next mount would do) or its
 *       damaged superblock reported; then both superblock copies: checksum, version, geometry
 *       ({@link Layout#problem}), the backup's geometry, UUID, label and features equal to the
 *       primary's, feature bits known, the device large enough.</li>
 *   <li><b>Pass 1, inodes, extent maps and sizes.</b> {@link BTree#validate} of the inode tree
 *       (order, separators, balance, fill, checksums, tree ids) with every node claimed in
 *       {@link BlockClaims}; every record decodes, has a valid type and inline length
 *       (only symlinks carry inline data, of exactly their size), an inode number below the
 *       superblock's next inode number; only regular files and symlinks have extent maps. Each
 *       extent map is validated like the trees, its extents are in the data region, do not
 *       overlap logically, claim their blocks (a block claimed twice is cross-linked), and no
 *       written extent past the end of the file is noted, not an error: writeback converts
 *       extents before it raises the size, so a crash can leave data past the end, which the
 *       engine hides and removes before the file next grows over it.</li>
 *   <li><b>Pass 2, directory entries.</b> The directory tree validated; every entry decodes, its
 *       name is legal and hashes to the key's hash (else lookups miss it), names are unique per
 *       directory, the parent exists and is a directory, the child exists and has the type the
 *       entry records; a directory is named by at most one entry, never the root.</li>
 *   <li><b>Pass 3, connectivity.</b> The root inode exists, is a directory and is its own
 *       parent; every directory's ".." (the record's parent) is the directory that lists it, and
 *       every linked directory is reachable from the root (no cut-off subtrees, no cycles).</li>
 *   <li><b>Pass 4, reference counts and orphans.</b> The orphan tree validated; nlink equals the
 *       entries naming the inode (directories: 2 + subdirectories, 0 when unlinked); an inode
 *       with nlink 0 is on the orphan tree (else its space leaks forever), an orphan-tree entry
 *       names an existing inode with no links, and the inode's orphan flag agrees.</li>
 *   <li><b>Pass 5, free space.</b> The bitmap region reads and verifies; the bitmap equals the
 *       claimed set: fixed regions (superblock, journal, bitmap, backup) + tree nodes + data
 *       extents. Blocks in use but unreferenced are leaked; referenced but free could be handed
 *       out twice.</li>
 * </ol>
 * Leaked blocks are only freed when every tree was read completely: with a damaged tree, the
 * "leaked" blocks may be the unreadable subtree's, and freeing them would lose data for good.
 *
 * <p>Single-threaded; one instance checks once.
 */
final class Checker {
    static final String SUPERBLOCK = "superblock";
    static final String JOURNAL = "journal";
    static final String INODES = "inodes";
    static final String DIRECTORIES = "directories";
    static final String XATTRS = "extended attributes";
    static final String CONNECTIVITY = "connectivity";
    static final String LINKS = "links";
    static final String SPACE = "free space";

    /** The image cannot be checked at all (not a coherentfs, unknown incompatible features, IO error). */
    static final class FatalException extends Exception {
        FatalException(String message) {
            super(message);
        }
    }

    /** Blocks per repair transaction for bitmap fixes: keeps a transaction's bitmap blocks within its credits. */
    static final long BLOCKS_PER_SPACE_FIX = (long) BitmapFormat.BITS_PER_BLOCK * 16;

    private static final Set<Integer> TYPES = Set.of(InodeRecord.S_IFSOCK, InodeRecord.S_IFLNK, InodeRecord.S_IFREG,
            InodeRecord.S_IFBLK, InodeRecord.S_IFDIR, InodeRecord.S_IFCHR, InodeRecord.S_IFIFO);

    /** What fsck keeps of an inode between passes. */
    private record Ino(int type, int nlink, long parent, int flags) {
        boolean isDirectory() {
            return type == InodeRecord.S_IFDIR;
        }
    }

    private final BlockDevice device;
    private final AlignedBufferPool pool;
    private final Consumer<String> progress;

    final List<Problem> problems = new ArrayList<>();
    final List<String> notes = new ArrayList<>();
    Superblock superblock;
    /** Why the image could not be checked at all (set by the caller from a FatalException), or null. */
    String fatal;
    int journalTransactions;
    boolean journalDamaged;
    boolean unknownRoFeatures;

    private Layout layout;
    private boolean treesIntact = true;
    private BlockClaims claims;
    private CheckStore store;
    private final TreeMap<Long, Ino> inodes = new TreeMap<>();
    private final Map<Long, Integer> entriesNaming = new HashMap<>();
    private final Map<Long, Integer> entriesIn = new HashMap<>();
    private final Map<Long, Integer> subdirectories = new HashMap<>();
    private final Map<Long, Long> listedIn = new HashMap<>();
    private final Set<Long> orphans = new HashSet<>();
    private long inodeCount;
    private long directoryCount;
    private long entryCount;
    private long xattrCount;
    private long extentCount;
    private long nodeCount;
    private long usedBlocks;

    Checker(BlockDevice device, AlignedBufferPool pool, Consumer<String> progress) {
        this.device = device;
        this.pool = pool;
        this.progress = progress;
    }

    /** Runs every pass; problems and notes collect in the fields. */
    void run() throws IOException, FatalException {
        progress.accept("Pass 0: checking superblocks and journal");
        checkSuperblocksAndJournal();
        try (MetaCache cache = new MetaCache(device, pool, 16384)) {
            store = new CheckStore(cache, layout);
            claims = new BlockClaims(layout.blockCount());
            claimFixed(0, 1, "the superblock");
            claimFixed(layout.journalStart(), layout.journalBlocks(), "the journal");
            claimFixed(layout.bitmapStart(), layout.bitmapBlocks(), "the free-space bitmap");
            claimFixed(layout.backupSuperblock(), 1, "the backup superblock");

            progress.accept("Pass 1: checking inodes, extent maps and sizes");
            if (!checkInodes()) {
                notes.add("the inode tree could not be read: later passes skipped");
                return;
            }
            progress.accept("Pass 1: " + inodeCount + " inodes, " + extentCount + " extents");

            progress.accept("Pass 2: checking directory entries");
            checkDirents();
            checkXattrs();
            progress.accept("Pass 2: " + entryCount + " directory entries, " + xattrCount + " extended attributes");

            progress.accept("Pass 3: checking directory connectivity");
            checkConnectivity();

            progress.accept("Pass 4: checking reference counts and orphans");
            checkLinksAndOrphans();

            progress.accept("Pass 5: checking free space");
            checkFreeSpace();
            progress.accept("Pass 5: " + usedBlocks + " of " + layout.blockCount() + " blocks in use, "
                    + nodeCount + " tree nodes");
        }
    }

    /** One line like e2fsck's closing summary. */
    String summary() {
        if (superblock == null) {
            return "no filesystem";
        }
        return String.format("%s: %d inodes (%d directories), %d entries, %d extents, %d tree nodes; "
                        + "%d/%d blocks in use", superblock.label().isEmpty() ? superblock.uuid() : superblock.label(),
                inodeCount, directoryCount, entryCount, extentCount, nodeCount, usedBlocks,
                layout == null ? 0 : layout.blockCount());
    }

    // ---- pass 0 ---------------------------------------------------------------------------------

    private void checkSuperblocksAndJournal() throws IOException, FatalException {
        long deviceBlocks = device.size() / Layout.BLOCK_SIZE;
        if (deviceBlocks < 2) {
            throw new FatalException("the device is too small to hold a coherentfs (" + device.size() + " bytes)");
        }
        Superblock first;
        try {
            first = decodeAt(0);
        } catch (ErrnoException primaryError) {
            try {
                first = decodeAt(deviceBlocks - 1);
            } catch (ErrnoException backupError) {
                String found = FilesystemSignatures.detect(device, pool);
                if (found != null && !found.equals("coherentfs")) {
                    throw new FatalException("not a coherentfs filesystem: the device holds " + found);
                }
                throw new FatalException("no valid coherentfs superblock: " + primaryError.getMessage()
                        + "; backup: " + backupError.getMessage());
            }
        }
        layout = first.layout();
        if (layout.blockCount() > deviceBlocks) {
            throw new FatalException("the superblock describes " + layout.blockCount() + " blocks but the device has "
                    + deviceBlocks + " (truncated image?)");
        }
        if (layout.bitmapBlocks() != BitmapRegion.blocksFor(layout.blockCount())) {
            throw new FatalException("the superblock's bitmap region of " + layout.bitmapBlocks()
                    + " blocks does not cover " + layout.blockCount() + " blocks");
        }

        try (MetaCache journalCache = new MetaCache(device, pool, 64)) {
            Journal journal = Journal.open(device, layout.journalStart(), layout.journalBlocks(), journalCache,
                    JournalOptions.DEFAULTS);
            ReplayReport report = journal.replayReport();
            journal.close();
            journalTransactions = report.transactionsReplayed();
            if (journalTransactions > 0) {
                notes.add("the journal holds " + journalTransactions + " committed transaction(s) ("
                        + report.blocksReplayed() + " blocks) not yet written home; checked the image as replay leaves it");
            }
        } catch (JournalCorruptException e) {
            journalDamaged = true;
            long start = layout.journalStart();
            long length = layout.journalBlocks();
            problems.add(Problem.fixableBeforeMount(JOURNAL, e.getMessage(),
                    "reset the journal to empty (transactions it held, if any, are lost)",
                    (dev, p) -> Journal.format(dev, start, length)));
        }

        // After replay: the superblock as the next mount will see it.
        Superblock primary = null;
        String primaryError = null;
        try {
            primary = decodeAt(0);
        } catch (ErrnoException e) {
            if (e.errno() == Errno.EOPNOTSUPP.code()) {
                throw new FatalException(e.getMessage());
            }
            primaryError = e.getMessage();
        }
        Superblock backup = null;
        String backupError = null;
        try {
            backup = decodeAt(layout.backupSuperblock());
        } catch (ErrnoException e) {
            if (e.errno() == Errno.EOPNOTSUPP.code()) {
                throw new FatalException(e.getMessage());
            }
            backupError = e.getMessage();
        }
        Problem.TxnFix rewriteBoth = (ctx, op) -> ctx.meta().update(op, s -> s);
        if (primary == null) {
            if (backup == null) {
                throw new FatalException("no valid coherentfs superblock after journal replay: " + primaryError
                        + "; backup: " + backupError);
            }
            problems.add(Problem.fixable(SUPERBLOCK, "primary superblock: " + primaryError,
                    "rewrite it from the backup superblock (tree roots of the last clean unmount)", rewriteBoth));
            superblock = backup;
        } else {
            superblock = primary;
            if (backup == null) {
                problems.add(Problem.fixable(SUPERBLOCK, "backup superblock at block " + layout.backupSuperblock()
                        + ": " + backupError, "rewrite the backup from the primary", rewriteBoth));
            } else {
                String diff = geometryDifference(primary, backup);
                if (diff != null) {
                    problems.add(Problem.fixable(SUPERBLOCK, "backup superblock differs from the primary: " + diff,
                            "rewrite the backup from the primary", rewriteBoth));
                }
            }
        }
        if (!superblock.layout().equals(layout)) {
            throw new FatalException("the journal replay changed the geometry in the superblock");
        }
        if ((superblock.roCompatFeatures() & ~Superblock.KNOWN_RO_COMPAT) != 0) {
            unknownRoFeatures = true;
            problems.add(Problem.unrepairable(SUPERBLOCK, "read-only-compatible features 0x"
                    + Integer.toHexString(superblock.roCompatFeatures() & ~Superblock.KNOWN_RO_COMPAT)
                    + " unknown to this fsck: it will check but not repair"));
        }
        if (superblock.compatFeatures() != 0) {
            notes.add("compatible features 0x" + Integer.toHexString(superblock.compatFeatures()) + " set");
        }
        if (!superblock.isClean()) {
            notes.add("the filesystem was not cleanly unmounted (or is mounted now)");
        }
        if ((superblock.state() & Superblock.STATE_ERRORS) != 0) {
            notes.add("the superblock records that errors were found earlier");
        }
        if (superblock.rootInode() < 1) {
            throw new FatalException("the superblock names no root directory (inode " + superblock.rootInode() + ")");
        }
    }

    private Superblock decodeAt(long block) throws IOException {
        try (AlignedBuffer buf = pool.allocate(Layout.BLOCK_SIZE)) {
            device.read(block * Layout.BLOCK_SIZE, buf.segment());
            return Superblock.decode(buf.segment(), block);
        }
    }

    private static String geometryDifference(Superblock a, Superblock b) {
        if (!a.layout().equals(b.layout())) {
            return "geometry " + b.layout() + " instead of " + a.layout();
        }
        if (!a.uuid().equals(b.uuid())) {
            return "UUID " + b.uuid() + " instead of " + a.uuid();
        }
        if (!a.label().equals(b.label())) {
            return "label '" + b.label() + "' instead of '" + a.label() + "'";
        }
        if (a.incompatFeatures() != b.incompatFeatures() || a.roCompatFeatures() != b.roCompatFeatures()
                || a.compatFeatures() != b.compatFeatures()) {
            return "different feature bits";
        }
        if (a.createdNanos() != b.createdNanos() || a.rootInode() != b.rootInode()) {
            return "different creation time or root inode";
        }
        return null;
    }

    private void claimFixed(long start, long length, String what) {
        String conflict = claims.claim(start, length, what);
        if (conflict != null) {
            problems.add(Problem.unrepairable(SUPERBLOCK, what + " overlaps " + conflict));
        }
    }

    // ---- trees -----------------------------------------------------------------------------------

    /** Opens a tree; a root that is not a node of that tree is a problem (and null). */
    private BTree openTree(String pass, String name, BTreeSpec spec, long treeId, long root) throws IOException {
        if (root == 0 || root == BTree.NO_ROOT) {
            treesIntact = false;
            problems.add(Problem.unrepairable(pass, name + " has no root"));
            return null;
        }
        if (!CheckStore.inDataRegion(layout, root)) {
            treesIntact = false;
            problems.add(Problem.unrepairable(pass, name + ": root block " + root + " lies outside the data region"));
            return null;
        }
        try {
            return BTree.open(store, spec, treeId, root, r -> {
                throw new IllegalStateException("fsck's check changed a tree");
            });
        } catch (ErrnoException e) {
            treesIntact = false;
            // The root's block is still in use by this tree, whatever its content.
            claimNode(pass, name, root);
            problems.add(Problem.unrepairable(pass, name + ": " + e.getMessage()));
            return null;
        }
    }

    /** Validates a tree and claims its nodes; returns false when it is damaged. */
    private boolean validateTree(String pass, String name, BTree tree) throws IOException {
        List<String> found;
        try {
            found = tree.validate(block -> claimNode(pass, name, block));
        } catch (ErrnoException e) {
            found = List.of("validation stopped: " + e.getMessage());
        }
        for (String f : found) {
            problems.add(Problem.unrepairable(pass, name + ": " + f));
        }
        if (!found.isEmpty()) {
            treesIntact = false;
        }
        return found.isEmpty();
    }

    private void claimNode(String pass, String name, long block) {
        nodeCount++;
        if (!CheckStore.inDataRegion(layout, block)) {
            treesIntact = false;
            problems.add(Problem.unrepairable(pass, name + ": a node pointer names block " + block
                    + ", outside the data region"));
            return;
        }
        String conflict = claims.claim(block, 1, name + " node");
        if (conflict != null) {
            problems.add(Problem.unrepairable(pass, "block " + block + " is a node of the " + name
                    + " and is also used by " + conflict + " (cross-linked)"));
        }
    }

    @FunctionalInterface
    private interface EntryVisitor {
        void visit(byte[] key, byte[] value) throws IOException;
    }

    /** Visits every readable entry; a damaged tree stops the scan with a problem. */
    private void scan(String pass, String name, BTree tree, EntryVisitor visitor) throws IOException {
        try {
            BTreeCursor c = tree.scan(null);
            while (c.next()) {
                visitor.visit(c.key(), c.value());
            }
        } catch (ErrnoException e) {
            treesIntact = false;
            problems.add(Problem.unrepairable(pass, name + ": scan stopped early: " + e.getMessage()));
        }
    }

    // ---- pass 1 ---------------------------------------------------------------------------------

    private boolean checkInodes() throws IOException {
        BTree tree = openTree(INODES, "inode tree", TreeShapes.INODES, TreeShapes.INODE_TREE,
                superblock.inodeTreeRoot());
        if (tree == null) {
            return false;
        }
        validateTree(INODES, "inode tree", tree);
        long[] maxIno = {0};
        scan(INODES, "inode tree", tree, (key, value) -> {
            long ino = TreeShapes.inoOf(key);
            maxIno[0] = Math.max(maxIno[0], ino);
            checkInode(ino, value);
        });
        if (maxIno[0] >= superblock.nextInode()) {
            long next = maxIno[0] + 1;
            problems.add(Problem.fixable(INODES, "the superblock's next inode number " + superblock.nextInode()
                    + " is not above inode " + maxIno[0] + " (it would be handed out twice)",
                    "set the next inode number to " + next, (ctx, op) -> ctx.meta().update(op, s -> {
                        Superblock.Builder b = s.toBuilder();
                        b.nextInode = Math.max(b.nextInode, next);
                        return b.build();
                    })));
        }
        return true;
    }

    private void checkInode(long ino, byte[] value) throws IOException {
        inodeCount++;
        InodeRecord r;
        try {
            r = InodeRecord.decode(value, ino);
        } catch (IllegalArgumentException e) {
            treesIntact = false; // its extent map, if any, is unknown
            problems.add(Problem.unrepairable(INODES, "inode " + ino + ": unreadable record: " + e.getMessage()));
            return;
        }
        String what = "inode " + ino;
        if (ino <= 0) {
            problems.add(Problem.unrepairable(INODES, "an inode with the invalid number " + ino));
        }
        int type = r.type();
        if (!TYPES.contains(type)) {
            problems.add(Problem.unrepairable(INODES, what + ": invalid file type 0" + Integer.toOctalString(type)
                    + " (mode 0" + Integer.toOctalString(r.mode()) + ")"));
        }
        if (r.nlink() < 0) {
            problems.add(Problem.unrepairable(INODES, what + ": negative link count " + r.nlink()));
        }
        if (r.isDirectory()) {
            directoryCount++;
        }
        boolean hasData = r.isRegular() || r.isSymlink();
        if (r.isSymlink()) {
            if (r.size() <= InodeRecord.INLINE_CAPACITY && r.extentRoot() == 0) {
                if (r.inline().length != r.size()) {
                    problems.add(Problem.unrepairable(INODES, what + ": symlink of " + r.size() + " bytes with "
                            + r.inline().length + " bytes of inline target"));
                }
            } else if (r.inline().length != 0 || r.extentRoot() == 0) {
                problems.add(Problem.unrepairable(INODES, what + ": symlink of " + r.size()
                        + " bytes needs its target in a block and no inline data (inline " + r.inline().length
                        + " bytes, extent map at " + r.extentRoot() + ")"));
            }
        } else if (r.inline().length != 0) {
            problems.add(Problem.unrepairable(INODES, what + ": " + r.inline().length
                    + " bytes of inline data in an inode that is not a symlink"));
        }
        if (r.size() < 0) {
            problems.add(Problem.unrepairable(INODES, what + ": negative size " + r.size()));
        }
        if (r.extentRoot() != 0) {
            if (!hasData) {
                problems.add(Problem.unrepairable(INODES, what + ": a " + typeName(type) + " with an extent map"));
            }
            checkExtents(ino, r);
        }
        inodes.put(ino, new Ino(type, r.nlink(), r.parent(), r.flags()));
    }

    private void checkExtents(long ino, InodeRecord r) throws IOException {
        String name = "extent map of inode " + ino;
        BTree tree = openTree(INODES, name, ExtentMap.SPEC, ino, r.extentRoot());
        if (tree == null) {
            return;
        }
        validateTree(INODES, name, tree);
        List<ExtentMap.Extent> all;
        try {
            all = new ExtentMap(tree).all();
        } catch (ErrnoException e) {
            treesIntact = false;
            problems.add(Problem.unrepairable(INODES, name + ": scan stopped: " + e.getMessage()));
            return;
        }
        long sizeBlocks = (Math.max(r.size(), 0) + Layout.BLOCK_SIZE - 1) / Layout.BLOCK_SIZE;
        long logicalEnd = 0;
        for (ExtentMap.Extent e : all) {
            extentCount++;
            String ext = "inode " + ino + " extent " + e.logical() + "+" + e.length() + " -> block " + e.physical();
            if (e.length() < 1 || e.length() > ExtentMap.MAX_LENGTH || e.logical() < 0) {
                problems.add(Problem.unrepairable(INODES, ext + ": invalid length or position"));
                continue;
            }
            if (e.logical() < logicalEnd) {
                problems.add(Problem.unrepairable(INODES, ext + ": overlaps the previous extent (which ends at "
                        + logicalEnd + ")"));
            }
            logicalEnd = Math.max(logicalEnd, e.end());
            if (e.physical() < layout.firstDataBlock() || e.physical() + e.length() > layout.backupSuperblock()
                    || e.physical() + e.length() < e.physical()) {
                problems.add(Problem.unrepairable(INODES, ext + ": outside the data region ["
                        + layout.firstDataBlock() + ", " + layout.backupSuperblock() + ")"));
                continue;
            }
            String conflict = claims.claim(e.physical(), e.length(), "inode " + ino + " (logical block "
                    + e.logical() + ")");
            if (conflict != null) {
                problems.add(Problem.unrepairable(INODES, ext + ": data blocks also used by " + conflict
                        + " (cross-linked: one write would overwrite the other)"));
            }
            if (e.end() > sizeBlocks && !e.unwritten()) {
                notes.add("inode " + ino + ": " + ext + " holds written blocks past the end of the file (size "
                        + r.size() + " bytes), left by writeback cut short; the file's next growth removes them");
            }
        }
    }

    private static String typeName(int type) {
        return switch (type) {
            case InodeRecord.S_IFREG -> "regular file";
            case InodeRecord.S_IFDIR -> "directory";
            case InodeRecord.S_IFLNK -> "symlink";
            case InodeRecord.S_IFCHR -> "character device";
            case InodeRecord.S_IFBLK -> "block device";
            case InodeRecord.S_IFIFO -> "fifo";
            case InodeRecord.S_IFSOCK -> "socket";
            default -> "file of type 0" + Integer.toOctalString(type);
        };
    }

    // ---- pass 2 ---------------------------------------------------------------------------------

    private void checkDirents() throws IOException {
        BTree tree = openTree(DIRECTORIES, "directory tree", TreeShapes.DIRENTS, TreeShapes.DIRENT_TREE,
                superblock.direntTreeRoot());
        if (tree == null) {
            return;
        }
        validateTree(DIRECTORIES, "directory tree", tree);
        long[] run = {-1, -1};
        List<byte[]> namesInRun = new ArrayList<>();
        scan(DIRECTORIES, "directory tree", tree, (key, value) -> {
            entryCount++;
            long parent = DirentCodec.keyParent(key);
            long position = DirentCodec.keyPosition(key);
            Dirent d;
            try {
                d = DirentCodec.decode(key, value);
            } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
                problems.add(Problem.fixable(DIRECTORIES, "entry at position " + position + " of directory " + parent
                        + ": unreadable (" + e.getMessage() + ")", "remove the entry",
                        (ctx, op) -> ctx.dirents(op).delete(key)));
                return;
            }
            checkDirent(key, d);
            long hash = position >>> DirentCodec.COUNTER_BITS;
            if (run[0] != parent || run[1] != hash) {
                run[0] = parent;
                run[1] = hash;
                namesInRun.clear();
            }
            for (byte[] seen : namesInRun) {
                if (Arrays.equals(seen, d.name())) {
                    problems.add(Problem.unrepairable(DIRECTORIES, "directory " + parent + " holds the name '"
                            + d.nameString() + "' twice (the second names inode " + d.child() + ")"));
                }
            }
            namesInRun.add(d.name());
        });
    }

    /**
     * The xattr tree (created on first use, so it may be absent): its nodes, that every
     * attribute belongs to an existing inode, that its key hashes its name, and the data block of
     * each out-of-line value.
     */
    private void checkXattrs() throws IOException {
        if (superblock.xattrTreeRoot() == 0) {
            return;
        }
        BTree tree = openTree(XATTRS, "xattr tree", TreeShapes.XATTRS, TreeShapes.XATTR_TREE,
                superblock.xattrTreeRoot());
        if (tree == null) {
            return;
        }
        validateTree(XATTRS, "xattr tree", tree);
        scan(XATTRS, "xattr tree", tree, (key, value) -> {
            xattrCount++;
            XattrCodec.Xattr x;
            try {
                x = XattrCodec.decode(key, value);
            } catch (IllegalArgumentException | IndexOutOfBoundsException e) {
                problems.add(Problem.unrepairable(XATTRS, "an attribute record is unreadable: " + e.getMessage()));
                return;
            }
            String name = new String(x.name(), java.nio.charset.StandardCharsets.UTF_8);
            if (!inodes.containsKey(x.ino())) {
                problems.add(Problem.unrepairable(XATTRS, "attribute '" + name + "' belongs to inode " + x.ino()
                        + ", which does not exist"));
            }
            if (x.position() >>> DirentCodec.COUNTER_BITS != DirentCodec.nameHash(x.name())) {
                problems.add(Problem.unrepairable(XATTRS, "attribute '" + name + "' of inode " + x.ino()
                        + " is stored under the wrong hash"));
            }
            if (x.outOfLine()) {
                if (!CheckStore.inDataRegion(layout, x.valueBlock())) {
                    problems.add(Problem.unrepairable(XATTRS, "attribute '" + name + "' of inode " + x.ino()
                            + " points at block " + x.valueBlock() + ", outside the data region"));
                    return;
                }
                String conflict = claims.claim(x.valueBlock(), 1, "the value of attribute '" + name + "' of inode "
                        + x.ino());
                if (conflict != null) {
                    problems.add(Problem.unrepairable(XATTRS, "block " + x.valueBlock() + " holds the value of '"
                            + name + "' of inode " + x.ino() + " and is also used by " + conflict + " (cross-linked)"));
                }
            }
        });
    }

    private void checkDirent(byte[] key, Dirent d) {
        String where = "entry '" + d.nameString() + "' in directory " + d.parent();
        try {
            DirentCodec.checkName(d.name());
        } catch (IllegalArgumentException e) {
            problems.add(Problem.unrepairable(DIRECTORIES, where + ": invalid name: " + e.getMessage()));
        }
        long hash = d.position() >>> DirentCodec.COUNTER_BITS;
        long expected = DirentCodec.nameHash(d.name());
        if (hash != expected) {
            problems.add(Problem.unrepairable(DIRECTORIES, where + ": stored under hash 0x" + Long.toHexString(hash)
                    + " but the name hashes to 0x" + Long.toHexString(expected) + " (lookups cannot find it)"));
        }
        Ino dir = inodes.get(d.parent());
        if (dir == null) {
            problems.add(Problem.unrepairable(DIRECTORIES, where + ": the directory does not exist"));
        } else if (!dir.isDirectory()) {
            problems.add(Problem.unrepairable(DIRECTORIES, where + ": inode " + d.parent() + " is a "
                    + typeName(dir.type()) + ", not a directory"));
        }
        Ino child = inodes.get(d.child());
        if (child == null) {
            problems.add(Problem.fixable(DIRECTORIES, where + " names inode " + d.child() + ", which does not exist",
                    "remove the entry", (ctx, op) -> ctx.dirents(op).delete(key)));
            return;
        }
        entriesIn.merge(d.parent(), 1, Integer::sum);
        entriesNaming.merge(d.child(), 1, Integer::sum);
        int childType = child.type() >> 12;
        if (d.type() != childType) {
            byte[] name = d.name();
            long ino = d.child();
            problems.add(Problem.fixable(DIRECTORIES, where + " records type " + d.type() + " but inode " + ino
                    + " is a " + typeName(child.type()) + " (type " + childType + ")",
                    "record type " + childType + " in the entry",
                    (ctx, op) -> ctx.dirents(op).insert(key, DirentCodec.value(ino, childType, name))));
        }
        if (d.child() == superblock.rootInode()) {
            problems.add(Problem.unrepairable(DIRECTORIES, where + " names the root directory"));
        } else if (child.isDirectory()) {
            subdirectories.merge(d.parent(), 1, Integer::sum);
            Long earlier = listedIn.putIfAbsent(d.child(), d.parent());
            if (earlier != null) {
                problems.add(Problem.unrepairable(DIRECTORIES, "directory " + d.child()
                        + " has more than one name (in directories " + earlier + " and " + d.parent() + ")"));
            }
        }
    }

    // ---- pass 3 ---------------------------------------------------------------------------------

    private void checkConnectivity() {
        long root = superblock.rootInode();
        Ino rootIno = inodes.get(root);
        if (rootIno == null) {
            problems.add(Problem.unrepairable(CONNECTIVITY, "the root directory (inode " + root + ") does not exist"));
            return;
        }
        if (!rootIno.isDirectory()) {
            problems.add(Problem.unrepairable(CONNECTIVITY, "the root inode " + root + " is a "
                    + typeName(rootIno.type()) + ", not a directory"));
            return;
        }
        if (rootIno.parent() != root) {
            problems.add(Problem.fixable(CONNECTIVITY, "the root directory's parent is " + rootIno.parent()
                    + ", not itself", "make the root its own parent",
                    (ctx, op) -> ctx.changeInode(op, root, b -> b.parent = root)));
        }
        Map<Long, Boolean> reachable = new HashMap<>();
        reachable.put(root, true);
        for (Map.Entry<Long, Ino> e : inodes.entrySet()) {
            long ino = e.getKey();
            Ino info = e.getValue();
            if (!info.isDirectory() || ino == root) {
                continue;
            }
            Long in = listedIn.get(ino);
            if (in == null) {
                if (info.nlink() > 0) {
                    problems.add(Problem.unrepairable(CONNECTIVITY, "directory " + ino + " (nlink " + info.nlink()
                            + ") is listed in no directory: unreachable (fsck has no lost+found)"));
                }
                continue;
            }
            if (info.parent() != in) {
                long parent = in;
                problems.add(Problem.fixable(CONNECTIVITY, "directory " + ino + " has '..' = " + info.parent()
                        + " but is listed in directory " + in, "set its parent to " + in,
                        (ctx, op) -> ctx.changeInode(op, ino, b -> b.parent = parent)));
            }
            if (!isReachable(ino, root, reachable)) {
                problems.add(Problem.unrepairable(CONNECTIVITY, "directory " + ino
                        + " is not connected to the root (its chain of parents breaks off or loops)"));
            }
        }
    }

    private boolean isReachable(long ino, long root, Map<Long, Boolean> memo) {
        List<Long> path = new ArrayList<>();
        Set<Long> onPath = new HashSet<>();
        long cur = ino;
        boolean result;
        while (true) {
            Boolean known = memo.get(cur);
            if (known != null) {
                result = known;
                break;
            }
            if (!onPath.add(cur)) {
                result = false; // a cycle
                break;
            }
            path.add(cur);
            Long up = listedIn.get(cur);
            if (up == null) {
                result = false;
                break;
            }
            cur = up;
        }
        for (long p : path) {
            memo.put(p, result);
        }
        return result;
    }

    // ---- pass 4 ---------------------------------------------------------------------------------

    private void checkLinksAndOrphans() throws IOException {
        BTree tree = openTree(LINKS, "orphan tree", TreeShapes.ORPHANS, TreeShapes.ORPHAN_TREE,
                superblock.orphanTreeRoot());
        if (tree != null) {
            validateTree(LINKS, "orphan tree", tree);
            scan(LINKS, "orphan tree", tree, (key, value) -> {
                long ino = TreeShapes.inoOf(key);
                orphans.add(ino);
                if (!inodes.containsKey(ino)) {
                    problems.add(Problem.fixable(LINKS, "the orphan tree names inode " + ino
                            + ", which does not exist", "remove the orphan entry",
                            (ctx, op) -> ctx.orphans(op).delete(TreeShapes.inoKey(ino))));
                }
            });
        }
        long root = superblock.rootInode();
        for (Map.Entry<Long, Ino> e : inodes.entrySet()) {
            long ino = e.getKey();
            Ino info = e.getValue();
            int entries = entriesNaming.getOrDefault(ino, 0);
            boolean onOrphanTree = orphans.contains(ino);
            boolean flagged = (info.flags() & InodeRecord.FLAG_ORPHAN) != 0;
            long expected;
            if (ino == root) {
                expected = 2 + subdirectories.getOrDefault(ino, 0);
            } else if (info.isDirectory()) {
                expected = entries == 0 ? 0 : 2 + subdirectories.getOrDefault(ino, 0);
            } else {
                expected = entries;
            }
            String what = "inode " + ino + " (" + typeName(info.type()) + ")";
            if (expected == 0) {
                if (info.nlink() != 0) {
                    if (!info.isDirectory()) {
                        problems.add(Problem.unrepairable(LINKS, what + " has nlink " + info.nlink()
                                + " but no directory entry names it (unattached; fsck has no lost+found)"));
                    }
                    continue;
                }
                if (info.isDirectory() && entriesIn.getOrDefault(ino, 0) > 0) {
                    problems.add(Problem.unrepairable(LINKS, "removed directory " + ino + " (nlink 0) still holds "
                            + entriesIn.get(ino) + " entries"));
                }
                if (!onOrphanTree) {
                    problems.add(Problem.fixable(LINKS, what + " has no links and is not on the orphan tree "
                            + "(its space would never be freed)", "put it on the orphan tree (the next mount frees it)",
                            (ctx, op) -> {
                                ctx.orphans(op).insert(TreeShapes.inoKey(ino), new byte[0]);
                                ctx.changeInode(op, ino, b -> b.flags |= InodeRecord.FLAG_ORPHAN);
                            }));
                } else if (!flagged) {
                    problems.add(Problem.fixable(LINKS, what + " is on the orphan tree without its orphan flag",
                            "set the orphan flag", (ctx, op) -> ctx.changeInode(op, ino,
                                    b -> b.flags |= InodeRecord.FLAG_ORPHAN)));
                }
                continue;
            }
            if (info.nlink() != expected) {
                int count = (int) expected;
                problems.add(Problem.fixable(LINKS, what + " has link count " + info.nlink() + ", should be "
                        + expected, "set the link count to " + expected,
                        (ctx, op) -> ctx.changeInode(op, ino, b -> b.nlink = count)));
            }
            if (onOrphanTree) {
                problems.add(Problem.fixable(LINKS, what + " is on the orphan tree but has " + expected
                        + " link(s): the next mount would free a file in use", "take it off the orphan tree",
                        (ctx, op) -> {
                            ctx.orphans(op).delete(TreeShapes.inoKey(ino));
                            ctx.changeInode(op, ino, b -> b.flags &= ~InodeRecord.FLAG_ORPHAN);
                        }));
            } else if (flagged) {
                problems.add(Problem.fixable(LINKS, what + " carries the orphan flag but has links",
                        "clear the orphan flag", (ctx, op) -> ctx.changeInode(op, ino,
                                b -> b.flags &= ~InodeRecord.FLAG_ORPHAN)));
            }
        }
    }

    // ---- pass 5 ---------------------------------------------------------------------------------

    private void checkFreeSpace() throws IOException {
        BitmapRegion region = new BitmapRegion(layout.bitmapStart(), layout.blockCount());
        BlockBitmap bitmap;
        try {
            bitmap = BitmapDeviceIO.load(device, pool, region);
        } catch (ErrnoException e) {
            usedBlocks = claims.claimedBlocks();
            if (treesIntact) {
                BlockBitmap rebuilt = claims.bitmap();
                problems.add(Problem.fixableBeforeMount(SPACE, "free-space bitmap: " + e.getMessage(),
                        "rebuild the whole bitmap from the blocks in use", (dev, p) -> {
                            BitmapDeviceIO.writeAll(dev, p, region, rebuilt);
                            dev.flush();
                        }));
            } else {
                problems.add(Problem.unrepairable(SPACE, "free-space bitmap: " + e.getMessage()
                        + " (not rebuilt: damaged trees leave the blocks in use unknown)"));
            }
            return;
        }
        usedBlocks = bitmap.totalBlocks() - bitmap.freeBlocks();
        CheckReport report = new BlockAllocator(region, bitmap).check(claims::isReferenced);
        for (Extent e : report.referencedButFree()) {
            for (Extent part : chunks(e)) {
                problems.add(Problem.fixable(SPACE, part
                                + ": in use but marked free in the bitmap (they could be allocated twice)",
                        "mark them in use", Problem.Stage.FIRST, (ctx, op) -> markUsed(op, part)));
            }
        }
        for (Extent e : report.leaked()) {
            for (Extent part : chunks(e)) {
                String message = part + ": marked in use but nothing references them (leaked)";
                if (treesIntact) {
                    problems.add(Problem.fixable(SPACE, message, "free them", Problem.Stage.LAST,
                            (ctx, op) -> op.freeExtent(part.start(), part.length())));
                } else {
                    problems.add(Problem.unrepairable(SPACE, message
                            + "; not freed: they may belong to a damaged tree"));
                }
            }
        }
    }

    private static List<Extent> chunks(Extent e) {
        List<Extent> out = new ArrayList<>();
        for (long s = e.start(); s < e.end(); s += BLOCKS_PER_SPACE_FIX) {
            out.add(new Extent(s, Math.min(BLOCKS_PER_SPACE_FIX, e.end() - s)));
        }
        return out;
    }

    /** Marks a free run in use: the allocator's goal rule hands out exactly the free run at the goal. */
    private static void markUsed(MetaOp op, Extent e) throws IOException {
        Extent got = op.allocateData(e.start(), e.length());
        if (got.start() != e.start() || got.length() != e.length()) {
            op.freeExtent(got.start(), got.length());
            throw new ErrnoException(Errno.EIO, "fsck", "the allocator handed out " + got + " instead of " + e);
        }
    }
}
