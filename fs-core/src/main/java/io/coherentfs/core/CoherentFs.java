package io.coherentfs.core;

import static io.coherentfs.core.inode.InodeRecord.S_IFDIR;
import static io.coherentfs.core.inode.InodeRecord.S_IFLNK;
import static io.coherentfs.core.inode.InodeRecord.S_IFMT;
import static io.coherentfs.core.inode.InodeRecord.S_IFREG;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.Reservation;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeCursor;
import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.dir.DirentCodec.Dirent;
import io.coherentfs.core.cache.PageCache;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.extent.ExtentMapper;
import io.coherentfs.core.extent.Mapping;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaReader;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.DirEntry;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.StatFs;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.FaultGuard;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.xattr.XattrCodec;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The coherentfs engine: the {@link Vfs} over a {@link BlockDevice}.
 *
 * <h2>Locks (DESIGN.md section 4, outermost first)</h2>
 * <ol>
 *   <li>{@link LiveInode#rwsem} (i_rwsem), per inode: shared for reads, exclusive for writes and
 *       truncation.</li>
 *   <li>A metadata transaction ({@link MetaOp}, a journal handle) is begun next, with no tree
 *       lock held: beginning may wait for other handles to close.</li>
 *   <li>{@link #treeLock} (tier 5): every B+tree and the allocator; exclusive to change, shared
 *       to look. Device IO for file data is done without it.</li>
 * </ol>
 *
 * <h2>Failure atomicity</h2>
 * Every operation checks its arguments (ENOENT, EEXIST, ENOTDIR, ...) before it changes
 * anything, and namespace operations refuse with ENOSPC up front unless the blocks their tree
 * changes may need are available. A failure after the first change cannot be rolled back (journal
 * handles have no undo): the journal is aborted and the filesystem turns read-only; the image on
 * disk stays consistent and the next mount replays what committed.
 *
 * <h2>Unlinked but in use</h2>
 * An inode whose last link goes while it has lookups or open files is put on the orphan tree in
 * the same transaction, and freed when the last reference goes, or at the next mount after a
 * crash.
 */
public final class CoherentFs implements Vfs {
    /**
     * How the filesystem is mounted.
     *
     * @param cacheBytes the page cache's budget for clean pages (mount option {@code cache_size=})
     * @param coherence which coherence mechanisms are on (all, unless an {@code unsafe_*} option)
     * @param metrics where the engine registers its counters and timers; null for a registry of
     *     the mount's own ({@link CoherentFs#metrics()})
     */
    public record Options(boolean readOnly, JournalOptions journal, Atime atime, long cacheBytes,
            CoherenceConfig coherence, MeterRegistry metrics) {
        /** The page cache's budget when no {@code cache_size=} is given: 256 MiB. */
        public static final long DEFAULT_CACHE_BYTES = 256L << 20;
        public static final Options DEFAULT = new Options(false, JournalOptions.DEFAULTS, Atime.RELATIME,
                DEFAULT_CACHE_BYTES, CoherenceConfig.DEFAULTS, null);

        public Options {
            if (cacheBytes < 64 * 4096) {
                throw new IllegalArgumentException("cache_size must be at least 256 KiB, got " + cacheBytes);
            }
            java.util.Objects.requireNonNull(journal, "journal");
            java.util.Objects.requireNonNull(atime, "atime");
            java.util.Objects.requireNonNull(coherence, "coherence");
        }

        public Options(boolean readOnly, JournalOptions journal) {
            this(readOnly, journal, Atime.RELATIME, DEFAULT_CACHE_BYTES, CoherenceConfig.DEFAULTS, null);
        }

        public Options withReadOnly(boolean ro) {
            return new Options(ro, journal, atime, cacheBytes, coherence, metrics);
        }

        public Options withAtime(Atime mode) {
            return new Options(readOnly, journal, mode, cacheBytes, coherence, metrics);
        }

        public Options withCacheBytes(long bytes) {
            return new Options(readOnly, journal, atime, bytes, coherence, metrics);
        }

        public Options withCoherence(CoherenceConfig config) {
            return new Options(readOnly, journal, atime, cacheBytes, config, metrics);
        }

        public Options withMetrics(MeterRegistry registry) {
            return new Options(readOnly, journal, atime, cacheBytes, coherence, registry);
        }
    }

    /** When reads update the access time, as mount(8)'s options say. */
    public enum Atime {
        /** Only when atime is not newer than mtime or ctime, or is a day old (Linux's default). */
        RELATIME,
        /** Never. */
        NOATIME,
        /** On every read. */
        STRICTATIME;

        /** True when a read at {@code now} must update the access time of {@code r}. */
        boolean due(InodeRecord r, Timespec now) {
            return switch (this) {
                case NOATIME -> false;
                case STRICTATIME -> true;
                case RELATIME -> r.atime().compareTo(r.mtime()) <= 0 || r.atime().compareTo(r.ctime()) <= 0
                        || now.seconds() - r.atime().seconds() >= 24 * 3600;
            };
        }
    }

    static final int BLOCK = 4096;
    /** Largest file: 16 TiB (logical block numbers stay far from overflow). */
    public static final long MAX_FILE_SIZE = 1L << 44;
    /** ext4's limit on hard links. */
    static final int LINK_MAX = 65000;
    /** Journal credits of a namespace operation: a few records in three trees, each may split up to the root. */
    static final int NAMESPACE_CREDITS = 64;
    /** Extents truncate removes per transaction. */
    static final int EXTENTS_PER_TRUNCATE_STEP = 8;

    private static final int S_ISUID = 04000;
    private static final int S_ISGID = 02000;

    private final BlockDevice device;
    private final AlignedBufferPool pool;
    private final MetaStore meta;
    private final Trees trees;
    private final FileData data;
    private final Xattrs xattrs;
    private final Atime atime;
    private final ReentrantReadWriteLock treeLock = new ReentrantReadWriteLock();
    private final ConcurrentHashMap<Long, LiveInode> live = new ConcurrentHashMap<>();
    /**
     * Inodes kept in {@link #live} though nothing uses them (see {@link #keepUnused}), least
     * recently released first. Its own monitor; never held while taking another lock.
     */
    private final LinkedHashMap<Long, LiveInode> unused = new LinkedHashMap<>(64, 0.75f, true);
    static final int UNUSED_INODES_CACHED = 512;
    private final ConcurrentHashMap<Long, OpenFile> openFiles = new ConcurrentHashMap<>();
    private final AtomicLong nextFileId = new AtomicLong(1);
    private volatile boolean closed;
    private final RacePoints race;
    private final CoherenceConfig coherence;
    private final PageCache cache;
    private final BufferedIo buffered;
    private final Writeback writeback;
    private final DirectIo direct;
    private final MeterRegistry metrics;

    private CoherentFs(BlockDevice device, AlignedBufferPool pool, MetaStore meta, Options options, RacePoints race)
            throws IOException {
        this.atime = options.atime();
        this.device = device;
        this.pool = pool;
        this.meta = meta;
        this.race = race;
        this.coherence = options.coherence();
        this.trees = new Trees(meta);
        this.data = new FileData(this, device, pool);
        this.xattrs = new Xattrs(device, pool);
        this.cache = new PageCache(pool, options.cacheBytes(), Runnable::run, race);
        FolioIo folioIo = new FolioIo(device);
        Reservation delalloc = meta.allocator().reserve(0);
        FaultGuard faultGuard = new FaultGuard(race);
        this.buffered = new BufferedIo(this, cache, folioIo, race, coherence, meta.allocator(), delalloc, faultGuard);
        this.writeback = new Writeback(this, cache, folioIo, delalloc, race);
        this.direct = new DirectIo(this, data, device, pool, cache, writeback, race, coherence, faultGuard);
        this.metrics = options.metrics() != null ? options.metrics() : new SimpleMeterRegistry();
        EngineMetrics.register(metrics, this, cache, buffered, writeback, direct);
    }

    // ---- life cycle ----------------------------------------------------------------------------

    /**
     * Formats {@code device}: journal, bitmap, the filesystem-wide trees and an empty root
     * directory (mode 0755, owned by {@code owner}). The device stays open.
     */
    public static Superblock mkfs(BlockDevice device, String label, UUID uuid, Caller owner) throws IOException {
        try (AlignedBufferPool pool = new AlignedBufferPool()) {
            MetaStore.format(device, pool, label, uuid);
            try (MetaStore meta = MetaStore.mount(device, pool, JournalOptions.DEFAULTS, false)) {
                Trees trees = new Trees(meta);
                try (MetaOp op = meta.begin(NAMESPACE_CREDITS)) {
                    trees.createAll(op);
                    Timespec now = Timespec.now();
                    InodeRecord root = new InodeRecord(S_IFDIR | 0755, owner.uid(), owner.gid(), 2, 0, 0, now, now,
                            now, now, 1, 0, 0, 0, ROOT, null);
                    trees.inodes(op, op).insert(Trees.inoKey(ROOT), root.encode());
                    meta.update(op, s -> {
                        Superblock.Builder b = s.toBuilder();
                        b.rootInode = ROOT;
                        b.nextInode = ROOT + 1;
                        b.nextGeneration = 2;
                        return b.build();
                    });
                }
                return meta.superblock();
            }
        }
    }

    /** Mounts the coherentfs on {@code device} (replaying its journal). The device stays the caller's. */
    public static CoherentFs open(BlockDevice device, Options options) throws IOException {
        return open(device, options, RacePoints.NONE);
    }

    /**
     * Mounts with {@code race} as the engine's interleaving points: race tests pass an armable
     * set; production passes {@link RacePoints#NONE}.
     */
    public static CoherentFs open(BlockDevice device, Options options, RacePoints race) throws IOException {
        AlignedBufferPool pool = new AlignedBufferPool();
        try {
            MetaStore meta = MetaStore.mount(device, pool, options.journal(), options.readOnly());
            CoherentFs fs = new CoherentFs(device, pool, meta, options, race);
            if (!options.readOnly()) {
                fs.reapOrphans();
                fs.writeback.start();
            }
            return fs;
        } catch (IOException | RuntimeException e) {
            pool.close();
            throw e;
        }
    }

    public Superblock superblock() {
        return meta.superblock();
    }

    public MetaStore meta() {
        return meta;
    }

    // ---- transactions --------------------------------------------------------------------------

    @FunctionalInterface
    interface Change<T> {
        T apply(MetaOp op) throws IOException;
    }

    @FunctionalInterface
    interface Look<T> {
        T apply(NodeStore store) throws IOException;
    }

    /** Runs {@code change}, which may consume space, in a transaction of its own under the exclusive tree lock. */
    <T> T change(int credits, Change<T> change) throws IOException {
        return change(credits, MetaStore.Space.CONSUMES, change);
    }

    /**
     * Runs {@code change} in a transaction of its own under the exclusive tree lock. A change that
     * frees space ({@link MetaStore.Space#FREES}) works on a full filesystem.
     */
    <T> T change(int credits, MetaStore.Space space, Change<T> change) throws IOException {
        try {
            return changeOnce(credits, space, change);
        } catch (ErrnoException.NoSpaceException e) {
            // Blocks freed by transactions not yet checkpointed come back once they are (as
            // ext4_should_retry_alloc): commit, checkpoint, and try once more. A change that failed
            // half-way aborted the journal and is not retried.
            if (meta.journal().isAborted() || meta.allocator().statfs().pendingFreeBlocks() == 0) {
                throw e;
            }
            meta.commit();
            meta.journal().checkpoint();
            return changeOnce(credits, space, change);
        }
    }

    private <T> T changeOnce(int credits, MetaStore.Space space, Change<T> change) throws IOException {
        checkOpen();
        MetaOp op = meta.begin(credits, space);
        boolean failed = true;
        treeLock.writeLock().lock();
        try {
            T result = change.apply(op);
            failed = false;
            return result;
        } catch (IOException | RuntimeException e) {
            if (op.modified()) {
                meta.journal().abort(e);
            }
            throw e;
        } finally {
            treeLock.writeLock().unlock();
            if (failed && op.modified()) {
                op.closeAborted();
            } else {
                op.close();
            }
        }
    }

    /** Runs {@code look} over a read-only view under the shared tree lock. */
    <T> T look(Look<T> look) throws IOException {
        checkOpen();
        treeLock.readLock().lock();
        try {
            return look.apply(new MetaReader(meta.cache()));
        } finally {
            treeLock.readLock().unlock();
        }
    }

    private void checkOpen() throws ErrnoException {
        if (closed) {
            throw new ErrnoException(Errno.EIO, "vfs", "the filesystem is closed");
        }
    }

    private void requireSpace(long blocks) throws IOException {
        while (meta.allocator().statfs().availableBlocks() < blocks) {
            if (!retryAfterCheckpoint()) {
                throw new ErrnoException.NoSpaceException("vfs", "no room for the " + blocks + " blocks this change needs");
            }
        }
    }

    // ---- inode records -------------------------------------------------------------------------

    InodeRecord load(BTree inodes, long ino) throws IOException {
        byte[] v = inodes.get(Trees.inoKey(ino));
        if (v == null) {
            throw new ErrnoException.NoEntryException("vfs", "inode " + ino + " does not exist");
        }
        return InodeRecord.decode(v, ino);
    }

    InodeRecord load(NodeStore store, long ino) throws IOException {
        return load(trees.inodes(store, null), ino);
    }

    void save(BTree inodes, long ino, InodeRecord r) throws IOException {
        inodes.insert(Trees.inoKey(ino), r.encode());
        LiveInode li = live.get(ino);
        if (li != null) {
            li.atimeQuietUntil = 0; // mtime or ctime may have moved: relatime must look again
        }
    }

    BTree inodes(MetaOp op) throws IOException {
        return trees.inodes(op, op);
    }

    /** The extent map of {@code ino} for changing, created when {@code create}; null for none. */
    ExtentMap extentsForChange(MetaOp op, BTree inodes, long ino, boolean create) throws IOException {
        InodeRecord r = load(inodes, ino);
        return Trees.extents(op, ino, r.extentRoot(), create, root -> {
            InodeRecord now = load(inodes, ino);
            if (now.extentRoot() != root) {
                InodeRecord.Builder b = now.toBuilder();
                b.extentRoot = root;
                save(inodes, ino, b.build());
            }
        });
    }

    /** The extent map of {@code ino} for looking, or null for none. */
    ExtentMap extentsForLook(NodeStore store, long ino) throws IOException {
        InodeRecord r = load(store, ino);
        return Trees.extents(store, ino, r.extentRoot(), false, root -> {
            throw new IllegalStateException("a lookup moved the root of inode " + ino + "'s extent map");
        });
    }

    long extentSequence(long ino) {
        LiveInode li = live.get(ino);
        return li == null ? 0 : li.extentSequence.get();
    }

    void bumpExtentSequence(long ino) {
        LiveInode li = live.get(ino);
        if (li != null) {
            li.extentSequence.incrementAndGet();
        }
    }

    /** Maps {@code lblk} and up to {@code maxBlocks} after it for reading (no transaction). */
    Mapping mapForRead(long ino, long lblk, long maxBlocks) throws IOException {
        LiveInode li = live.get(ino);
        if (li != null) {
            Mapping cached = li.cachedMapping(lblk, maxBlocks, li.extentSequence.get());
            if (cached != null) {
                return cached;
            }
        }
        // The sequence is read under the tree lock, which every extent change holds while it
        // bumps it: the mapping and its sequence agree. The whole extent (or the hole up to the
        // next one) is cached, not just the part asked for.
        Mapping whole = look(store -> {
            ExtentMap map = extentsForLook(store, ino);
            long seq = extentSequence(ino);
            ExtentMap.Extent e = map == null ? null : map.find(lblk);
            if (e != null) {
                return new Mapping(e.unwritten() ? Mapping.Type.UNWRITTEN : Mapping.Type.MAPPED, e.logical(),
                        e.length(), e.physical(), seq);
            }
            ExtentMap.Extent next = map == null ? null : map.next(lblk);
            long end = next == null ? MAX_FILE_SIZE / BLOCK + 1 : next.logical();
            return new Mapping(Mapping.Type.HOLE, lblk, end - lblk, -1, seq);
        });
        if (li != null) {
            li.cacheMapping(whole);
        }
        long blocks = Math.min(maxBlocks, whole.end() - lblk);
        long physical = whole.physical() < 0 ? -1 : whole.physical() + (lblk - whole.logical());
        return new Mapping(whole.type(), lblk, blocks, physical, whole.sequence());
    }

    /**
     * After an ENOSPC: if blocks freed by transactions not yet checkpointed would help, commit and
     * checkpoint so they become allocatable, and return true (try again).
     */
    boolean retryAfterCheckpoint() throws IOException {
        if (meta.journal().isAborted() || meta.allocator().statfs().pendingFreeBlocks() == 0) {
            return false;
        }
        meta.commit();
        meta.journal().checkpoint();
        return true;
    }

    Writeback writeback() {
        return writeback;
    }

    BufferedIo bufferedIo() {
        return buffered;
    }

    /** The inodes in use now (a snapshot; for the flusher). */
    List<LiveInode> liveInodes() {
        return List.copyOf(live.values());
    }

    /** Frees device runs an extent map let go of, and uncharges them from the inode. */
    void freeRuns(MetaOp op, BTree inodes, long ino, List<long[]> runs) throws IOException {
        long blocks = 0;
        for (long[] run : runs) {
            op.freeExtent(run[0], run[1]);
            blocks += run[1];
        }
        if (blocks > 0) {
            bumpExtentSequence(ino);
            InodeRecord.Builder b = load(inodes, ino).toBuilder();
            b.blocks -= blocks;
            save(inodes, ino, b.build());
        }
    }

    /**
     * Counts a lookup ({@code open == false}) or an open of {@code ino}. Waits out an eviction in
     * progress and counts on the fresh LiveInode that follows it.
     */
    private LiveInode ref(long ino, boolean open) {
        while (true) {
            LiveInode li = live.computeIfAbsent(ino, LiveInode::new);
            synchronized (li) {
                if (!li.dead) {
                    if (open) {
                        li.opens++;
                    } else {
                        li.lookups++;
                    }
                    return li;
                }
            }
            li.rwsem.readLock().lock(); // eviction holds it exclusive until the LiveInode left the table
            li.rwsem.readLock().unlock();
        }
    }

    /**
     * The LiveInode of {@code ino} with its rwsem held (exclusive or shared) and its state loaded:
     * never one that eviction is tearing down.
     */
    LiveInode acquire(long ino, boolean exclusive) throws IOException {
        while (true) {
            LiveInode li = live.get(ino); // the common case takes no bin lock
            if (li == null) {
                li = live.computeIfAbsent(ino, LiveInode::new);
            }
            Lock l = exclusive ? li.rwsem.writeLock() : li.rwsem.readLock();
            l.lock();
            if (li.dead) {
                l.unlock();
                continue;
            }
            if (!li.isLoaded()) {
                try {
                    loadLive(li);
                } catch (IOException | RuntimeException e) {
                    l.unlock();
                    throw e;
                }
            }
            return li;
        }
    }

    private void loadLive(LiveInode li) throws IOException {
        boolean[] pastEof = {false};
        InodeRecord r = look(store -> {
            InodeRecord rec = load(store, li.ino);
            if (rec.isRegular()) {
                ExtentMap map = extentsForLook(store, li.ino);
                long sizeBlocks = (rec.size() + BLOCK - 1) / BLOCK;
                ExtentMap.Extent e = map == null ? null : map.find(sizeBlocks);
                e = e != null ? e : map == null ? null : map.next(sizeBlocks);
                while (e != null && !pastEof[0]) {
                    pastEof[0] = !e.unwritten();
                    e = map.next(e.end()); // next(x): the first extent starting at or after x
                }
            }
            return rec;
        });
        li.load(r);
        if (pastEof[0]) {
            li.blocksPastEof = true;
        }
    }

    /**
     * Before the file grows over its old end: removes written blocks a cut-short writeback left
     * past it (see {@link LiveInode#blocksPastEof}), so the growth shows zeros there, not them.
     * Holds rwsem exclusive.
     */
    void trimPastEof(LiveInode li) throws IOException {
        if (li.blocksPastEof) {
            freeBlocksFrom(li.ino, (li.size + BLOCK - 1) / BLOCK);
            li.blocksPastEof = false;
        }
    }

    private static void unlock(LiveInode li, boolean exclusive) {
        if (exclusive) {
            li.rwsem.writeLock().unlock();
        } else {
            li.rwsem.readLock().unlock();
        }
    }

    /** stat's view of a record: the in-memory size, times and delayed blocks of a live inode over it. */
    private Attr attrOf(long ino, InodeRecord r) {
        LiveInode li = live.get(ino);
        return Attr.of(ino, li == null ? r : li.overlay(r));
    }

    private static Timespec now() {
        return Timespec.now();
    }

    private static int typeBits(int mode) {
        return mode & S_IFMT;
    }

    private static ErrnoException err(Errno e, String call, String detail) {
        return ErrnoException.of(e.code(), call, detail);
    }

    private static void checkName(String call, byte[] name) throws ErrnoException {
        try {
            DirentCodec.checkName(name);
        } catch (DirentCodec.NameTooLongException e) {
            throw err(Errno.ENAMETOOLONG, call, e.getMessage());
        } catch (IllegalArgumentException e) {
            throw err(Errno.EINVAL, call, e.getMessage());
        }
    }

    private static boolean isDot(byte[] name) {
        return name.length == 1 && name[0] == '.';
    }

    private static boolean isDotDot(byte[] name) {
        return name.length == 2 && name[0] == '.' && name[1] == '.';
    }

    // ---- directory entries ---------------------------------------------------------------------

    /** The entry {@code name} of directory {@code dir}, or null. */
    static Dirent findEntry(BTree dirents, long dir, byte[] name) throws IOException {
        long hash = DirentCodec.nameHash(name);
        BTreeCursor c = dirents.scan(DirentCodec.key(dir, DirentCodec.position(hash, 0)));
        while (c.next()) {
            Dirent d = DirentCodec.decode(c.key(), c.value());
            if (d.parent() != dir || d.position() >>> DirentCodec.COUNTER_BITS != hash) {
                return null;
            }
            if (Arrays.equals(d.name(), name)) {
                return d;
            }
        }
        return null;
    }

    static void addEntry(BTree dirents, long dir, byte[] name, long child, int type) throws IOException {
        long hash = DirentCodec.nameHash(name);
        BTreeCursor c = dirents.scan(DirentCodec.key(dir, DirentCodec.position(hash, 0)));
        int counter = 0;
        while (c.next()) {
            long pos = DirentCodec.keyPosition(c.key());
            if (DirentCodec.keyParent(c.key()) != dir || pos >>> DirentCodec.COUNTER_BITS != hash
                    || (pos & DirentCodec.MAX_COUNTER) != counter) {
                break;
            }
            counter++;
        }
        if (counter > DirentCodec.MAX_COUNTER) {
            throw err(Errno.ENOSPC, "vfs", "too many names with one hash in directory " + dir);
        }
        dirents.insert(DirentCodec.key(dir, DirentCodec.position(hash, counter)),
                DirentCodec.value(child, type >> 12, name));
    }

    static void removeEntry(BTree dirents, Dirent d) throws IOException {
        dirents.delete(DirentCodec.key(d.parent(), d.position()));
    }

    static boolean isEmptyDirectory(BTree dirents, long dir) throws IOException {
        BTree.Entry e = dirents.ceiling(DirentCodec.key(dir, 0));
        return e == null || DirentCodec.keyParent(e.key()) != dir;
    }

    private InodeRecord directory(BTree inodes, long ino, String call) throws IOException {
        InodeRecord r = load(inodes, ino);
        if (!r.isDirectory()) {
            throw err(Errno.ENOTDIR, call, "inode " + ino + " is not a directory");
        }
        if (r.nlink() == 0) {
            throw err(Errno.ENOENT, call, "directory " + ino + " has been removed");
        }
        return r;
    }

    /** Parent changes with an entry added or removed: mtime and ctime now, nlink adjusted. */
    private void touchParent(BTree inodes, long dir, InodeRecord r, int nlinkDelta) throws IOException {
        InodeRecord.Builder b = r.toBuilder();
        Timespec t = now();
        b.mtime = t;
        b.ctime = t;
        b.nlink += nlinkDelta;
        save(inodes, dir, b.build());
    }

    // ---- Vfs: names ----------------------------------------------------------------------------

    @Override
    public Attr lookup(long parent, byte[] name) throws IOException {
        if (name.length > DirentCodec.NAME_MAX) {
            throw err(Errno.ENAMETOOLONG, "lookup", name.length + " bytes");
        }
        Attr a = look(store -> {
            BTree inodes = trees.inodes(store, null);
            InodeRecord dir = directory(inodes, parent, "lookup");
            long child;
            if (isDot(name)) {
                child = parent;
            } else if (isDotDot(name)) {
                child = dir.parent();
            } else {
                Dirent d = findEntry(trees.dirents(store, null), parent, name);
                if (d == null) {
                    throw err(Errno.ENOENT, "lookup", "no entry '" + new String(name) + "' in directory " + parent);
                }
                child = d.child();
            }
            return attrOf(child, load(inodes, child));
        });
        ref(a.ino(), false);
        return a;
    }

    @Override
    public void forget(long ino, long lookups) throws IOException {
        LiveInode li = live.get(ino);
        if (li == null) {
            return;
        }
        synchronized (li) {
            li.lookups = Math.max(0, li.lookups - lookups);
        }
        evictIfUnused(ino, li);
    }

    @Override
    public Attr getattr(long ino) throws IOException {
        return look(store -> attrOf(ino, load(store, ino)));
    }

    @Override
    public Attr mknod(long parent, byte[] name, int mode, long rdev, Caller caller) throws IOException {
        int type = typeBits(mode);
        if (type == 0) {
            mode |= S_IFREG;
        } else if (type == S_IFDIR || type == S_IFLNK) {
            throw err(Errno.EINVAL, "mknod", "use mkdir or symlink for this type");
        }
        return create(parent, name, mode, rdev, caller, null, "mknod");
    }

    @Override
    public Attr mkdir(long parent, byte[] name, int mode, Caller caller) throws IOException {
        return create(parent, name, S_IFDIR | (mode & 07777), 0, caller, null, "mkdir");
    }

    @Override
    public Attr symlink(long parent, byte[] name, byte[] target, Caller caller) throws IOException {
        if (target.length == 0) {
            throw err(Errno.ENOENT, "symlink", "empty target");
        }
        if (target.length >= BLOCK) {
            throw err(Errno.ENAMETOOLONG, "symlink", "target of " + target.length + " bytes");
        }
        return create(parent, name, S_IFLNK | 0777, 0, caller, target, "symlink");
    }

    private Attr create(long parent, byte[] name, int mode, long rdev, Caller caller, byte[] symlinkTarget,
            String call) throws IOException {
        checkName(call, name);
        if (isDot(name) || isDotDot(name)) {
            throw err(Errno.EEXIST, call, "'" + new String(name) + "'");
        }
        Attr a = change(NAMESPACE_CREDITS, op -> {
            BTree inodes = inodes(op);
            BTree dirents = trees.dirents(op, op);
            InodeRecord dir = directory(inodes, parent, call);
            if (findEntry(dirents, parent, name) != null) {
                throw err(Errno.EEXIST, call, "'" + new String(name) + "' exists in directory " + parent);
            }
            boolean isDir = typeBits(mode) == S_IFDIR;
            int newMode = mode;
            int gid = caller.gid();
            if ((dir.mode() & S_ISGID) != 0) {
                gid = dir.gid();
                if (isDir) {
                    newMode |= S_ISGID;
                }
            }
            long[] ids = allocateInode(op);
            long ino = ids[0];
            Timespec t = now();
            boolean longLink = symlinkTarget != null && symlinkTarget.length > InodeRecord.INLINE_CAPACITY;
            InodeRecord rec = new InodeRecord(newMode, caller.uid(), gid, isDir ? 2 : 1,
                    symlinkTarget == null ? 0 : symlinkTarget.length, rdev, t, t, t, t, ids[1], 0, 0, 0,
                    isDir ? parent : 0, symlinkTarget != null && !longLink ? symlinkTarget : null);
            save(inodes, ino, rec);
            if (longLink) {
                data.writeSymlinkBlock(op, inodes, ino, symlinkTarget);
                rec = load(inodes, ino);
            }
            addEntry(dirents, parent, name, ino, newMode);
            touchParent(inodes, parent, dir, isDir ? 1 : 0);
            return Attr.of(ino, rec);
        });
        ref(a.ino(), false);
        return a;
    }

    /** A new inode number and generation, from the superblock's counters. */
    private long[] allocateInode(MetaOp op) {
        long[] got = new long[2];
        meta.update(op, s -> {
            Superblock.Builder b = s.toBuilder();
            got[0] = b.nextInode++;
            got[1] = b.nextGeneration++;
            return b.build();
        });
        return got;
    }

    @Override
    public byte[] readlink(long ino) throws IOException {
        InodeRecord r = look(store -> load(store, ino));
        if (!r.isSymlink()) {
            throw err(Errno.EINVAL, "readlink", "inode " + ino + " is not a symbolic link");
        }
        if (r.size() <= InodeRecord.INLINE_CAPACITY) {
            return r.inline();
        }
        byte[] target = new byte[(int) r.size()];
        data.read(ino, 0, MemorySegment.ofArray(target), r.size());
        return target;
    }

    @Override
    public Attr link(long ino, long newParent, byte[] newName) throws IOException {
        checkName("link", newName);
        Attr a = change(NAMESPACE_CREDITS, op -> {
            BTree inodes = inodes(op);
            BTree dirents = trees.dirents(op, op);
            InodeRecord r = load(inodes, ino);
            if (r.isDirectory()) {
                throw err(Errno.EPERM, "link", "hard links to directories are not allowed");
            }
            if (r.nlink() == 0) {
                throw err(Errno.ENOENT, "link", "inode " + ino + " has been removed");
            }
            if (r.nlink() >= LINK_MAX) {
                throw err(Errno.EMLINK, "link", "inode " + ino + " has " + r.nlink() + " links");
            }
            InodeRecord dir = directory(inodes, newParent, "link");
            if (isDot(newName) || isDotDot(newName) || findEntry(dirents, newParent, newName) != null) {
                throw err(Errno.EEXIST, "link", "'" + new String(newName) + "' exists in directory " + newParent);
            }
            addEntry(dirents, newParent, newName, ino, r.mode());
            InodeRecord.Builder b = r.toBuilder();
            b.nlink++;
            b.ctime = now();
            InodeRecord linked = b.build();
            save(inodes, ino, linked);
            touchParent(inodes, newParent, dir, 0);
            return attrOf(ino, linked);
        });
        ref(ino, false);
        return a;
    }

    @Override
    public void unlink(long parent, byte[] name) throws IOException {
        removeName(parent, name, false);
    }

    @Override
    public void rmdir(long parent, byte[] name) throws IOException {
        if (isDot(name)) {
            throw err(Errno.EINVAL, "rmdir", "cannot remove '.'");
        }
        if (isDotDot(name)) {
            throw err(Errno.ENOTEMPTY, "rmdir", "cannot remove '..'");
        }
        removeName(parent, name, true);
    }

    private void removeName(long parent, byte[] name, boolean directory) throws IOException {
        String call = directory ? "rmdir" : "unlink";
        if (name.length > DirentCodec.NAME_MAX) {
            throw err(Errno.ENAMETOOLONG, call, name.length + " bytes");
        }
        long victim = change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = inodes(op);
            BTree dirents = trees.dirents(op, op);
            InodeRecord dir = directory(inodes, parent, call);
            Dirent d = findEntry(dirents, parent, name);
            if (d == null) {
                throw err(Errno.ENOENT, call, "no entry '" + new String(name) + "' in directory " + parent);
            }
            InodeRecord r = load(inodes, d.child());
            if (directory && !r.isDirectory()) {
                throw err(Errno.ENOTDIR, call, "'" + new String(name) + "' is not a directory");
            }
            if (!directory && r.isDirectory()) {
                throw err(Errno.EISDIR, call, "'" + new String(name) + "' is a directory");
            }
            if (directory && !isEmptyDirectory(dirents, d.child())) {
                throw err(Errno.ENOTEMPTY, call, "directory '" + new String(name) + "' is not empty");
            }
            removeEntry(dirents, d);
            touchParent(inodes, parent, dir, directory ? -1 : 0);
            dropLink(op, inodes, d.child(), r, directory);
            return d.child();
        });
        LiveInode li = live.get(victim);
        if (li == null || li.unused()) {
            evictIfUnused(victim, li);
        }
    }

    /**
     * One link of {@code ino} is gone: nlink down (to 0 for a directory), ctime now, and at 0
     * links the inode goes on the orphan tree until {@link #evict} frees it.
     */
    private void dropLink(MetaOp op, BTree inodes, long ino, InodeRecord r, boolean directory) throws IOException {
        InodeRecord.Builder b = r.toBuilder();
        b.nlink = directory ? 0 : r.nlink() - 1;
        b.ctime = now();
        if (b.nlink == 0) {
            b.flags |= InodeRecord.FLAG_ORPHAN;
            trees.orphans(op, op).insert(Trees.inoKey(ino), new byte[0]);
        }
        save(inodes, ino, b.build());
    }

    @Override
    public void rename(long parent, byte[] name, long newParent, byte[] newName, int flags) throws IOException {
        checkName("rename", name);
        checkName("rename", newName);
        if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0
                || flags == (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
            throw err(Errno.EINVAL, "rename", "flags 0x" + Integer.toHexString(flags));
        }
        if (isDot(name) || isDotDot(name) || isDot(newName) || isDotDot(newName)) {
            throw err(isDotDot(newName) || isDot(newName) ? Errno.EBUSY : Errno.EINVAL, "rename", "'.' or '..'");
        }
        boolean exchange = (flags & RENAME_EXCHANGE) != 0;
        long[] replaced = {0};
        change(NAMESPACE_CREDITS, MetaStore.Space.REARRANGES, op -> {
            BTree inodes = inodes(op);
            BTree dirents = trees.dirents(op, op);
            InodeRecord from = directory(inodes, parent, "rename");
            InodeRecord to = parent == newParent ? from : directory(inodes, newParent, "rename");
            Dirent src = findEntry(dirents, parent, name);
            if (src == null) {
                throw err(Errno.ENOENT, "rename", "no entry '" + new String(name) + "' in directory " + parent);
            }
            Dirent dst = findEntry(dirents, newParent, newName);
            InodeRecord moving = load(inodes, src.child());
            if ((flags & RENAME_NOREPLACE) != 0 && dst != null) {
                throw err(Errno.EEXIST, "rename", "'" + new String(newName) + "' exists");
            }
            if (dst != null && dst.child() == src.child()) {
                return null;  // both names are links to one inode: nothing to do (POSIX)
            }
            if (exchange && dst == null) {
                throw err(Errno.ENOENT, "rename", "RENAME_EXCHANGE with no '" + new String(newName) + "'");
            }
            InodeRecord target = dst == null ? null : load(inodes, dst.child());
            if (moving.isDirectory() && parent != newParent && isAncestor(inodes, src.child(), newParent)) {
                throw err(Errno.EINVAL, "rename", "cannot move a directory into itself");
            }
            if (exchange && target.isDirectory() && parent != newParent && isAncestor(inodes, dst.child(), parent)) {
                throw err(Errno.EINVAL, "rename", "cannot move a directory into itself");
            }
            if (!exchange && target != null) {
                if (moving.isDirectory() && !target.isDirectory()) {
                    throw err(Errno.ENOTDIR, "rename", "'" + new String(newName) + "' is not a directory");
                }
                if (!moving.isDirectory() && target.isDirectory()) {
                    throw err(Errno.EISDIR, "rename", "'" + new String(newName) + "' is a directory");
                }
                if (target.isDirectory() && !isEmptyDirectory(dirents, dst.child())) {
                    throw err(Errno.ENOTEMPTY, "rename", "'" + new String(newName) + "' is not empty");
                }
            }
            Timespec t = now();
            if (exchange) {
                removeEntry(dirents, src);
                removeEntry(dirents, dst);
                addEntry(dirents, parent, name, dst.child(), target.mode());
                addEntry(dirents, newParent, newName, src.child(), moving.mode());
                reparent(inodes, src.child(), moving, newParent, t);
                reparent(inodes, dst.child(), load(inodes, dst.child()), parent, t);
                int delta = (moving.isDirectory() ? 1 : 0) - (target.isDirectory() ? 1 : 0);
                touchParent(inodes, parent, load(inodes, parent), parent == newParent ? 0 : -delta);
                if (parent != newParent) {
                    touchParent(inodes, newParent, load(inodes, newParent), delta);
                }
                return null;
            }
            if (dst != null) {
                removeEntry(dirents, dst);
                dropLink(op, inodes, dst.child(), target, target.isDirectory());
                replaced[0] = dst.child();
                if (target.isDirectory()) {
                    touchParent(inodes, newParent, load(inodes, newParent), -1);
                }
            }
            removeEntry(dirents, src);
            addEntry(dirents, newParent, newName, src.child(), moving.mode());
            reparent(inodes, src.child(), moving, newParent, t);
            int delta = moving.isDirectory() && parent != newParent ? 1 : 0;
            touchParent(inodes, parent, load(inodes, parent), -delta);
            if (parent != newParent) {
                touchParent(inodes, newParent, load(inodes, newParent), delta);
            }
            return null;
        });
        if (replaced[0] != 0) {
            LiveInode li = live.get(replaced[0]);
            if (li == null || li.unused()) {
                evictIfUnused(replaced[0], li);
            }
        }
    }

    /** The moved inode's ctime, and its ".." when it is a directory. */
    private void reparent(BTree inodes, long ino, InodeRecord r, long newParent, Timespec t) throws IOException {
        InodeRecord.Builder b = r.toBuilder();
        b.ctime = t;
        if (r.isDirectory()) {
            b.parent = newParent;
        }
        save(inodes, ino, b.build());
    }

    /** True when directory {@code ancestor} is {@code dir} or one of its ancestors. */
    private boolean isAncestor(BTree inodes, long ancestor, long dir) throws IOException {
        long d = dir;
        for (int depth = 0; depth < 4096; depth++) {
            if (d == ancestor) {
                return true;
            }
            if (d == ROOT) {
                return false;
            }
            d = load(inodes, d).parent();
        }
        throw err(Errno.ELOOP, "rename", "directory chain deeper than 4096");
    }

    // ---- Vfs: attributes -----------------------------------------------------------------------

    @Override
    public Attr setattr(long ino, SetAttr c) throws IOException {
        if (c.size() != null) {
            truncate(ino, c.size());
        }
        if (c.mode() == null && c.uid() == null && c.gid() == null && c.atime() == null && !c.atimeNow()
                && c.mtime() == null && !c.mtimeNow()) {
            if (c.size() != null) {
                return getattr(ino);
            }
        }
        return change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = inodes(op);
            InodeRecord r = load(inodes, ino);
            InodeRecord.Builder b = r.toBuilder();
            LiveInode li = live.get(ino);
            if (li != null) {
                li.flushTimes(b); // pending write times first: explicit times below win over them
            }
            Timespec t = now();
            if (c.mode() != null) {
                b.mode = r.type() | (c.mode() & 07777);
            }
            boolean ownerChanges = (c.uid() != null && c.uid() != r.uid()) || (c.gid() != null && c.gid() != r.gid());
            if (c.uid() != null) {
                b.uid = c.uid();
            }
            if (c.gid() != null) {
                b.gid = c.gid();
            }
            if (ownerChanges && !r.isDirectory()) {
                // chown clears set-user-ID, and set-group-ID when group-executable (as Linux does).
                b.mode &= ~S_ISUID;
                if ((b.mode & 010) != 0) {
                    b.mode &= ~S_ISGID;
                }
            }
            if (c.atimeNow()) {
                b.atime = t;
            } else if (c.atime() != null) {
                b.atime = c.atime();
            }
            if (c.mtimeNow()) {
                b.mtime = t;
            } else if (c.mtime() != null) {
                b.mtime = c.mtime();
            }
            b.ctime = t;
            InodeRecord updated = b.build();
            save(inodes, ino, updated);
            return attrOf(ino, updated);
        });
    }

    /**
     * Changes a regular file's size. Shrinking zeroes the new last page's tail through the cache,
     * drops the cached pages and delayed blocks past it and frees the blocks; extending zeroes the
     * old last page's tail and writes back every page from the disk size to it before the new size
     * is committed, so after a crash the gap reads as zeros and nothing older shows below it.
     */
    void truncate(long ino, long size) throws IOException {
        if (size < 0) {
            throw err(Errno.EINVAL, "truncate", "negative size " + size);
        }
        if (size > MAX_FILE_SIZE) {
            throw err(Errno.EFBIG, "truncate", size + " bytes exceeds the largest file, " + MAX_FILE_SIZE);
        }
        LiveInode li = acquire(ino, true);
        try {
            requireRegular(li, "truncate");
            li.awaitDio();
            long old = li.size;
            long keepPages = (size + BLOCK - 1) / BLOCK;
            if (size < old) {
                li.size = size; // first (truncate_setsize): a fault racing the drop sees the new end
                buffered.zeroAfterEof(li, size);
                buffered.dropRange(li, keepPages, Long.MAX_VALUE);
                freeBlocksFrom(ino, keepPages);
            } else if (size > old) {
                trimPastEof(li);
                prepareGrowth(li);
                li.size = size;
            }
            saveSize(li, size, true);
        } finally {
            li.rwsem.writeLock().unlock();
        }
    }

    /**
     * Before a larger size can become durable (truncate up, fallocate past the end, an extending
     * direct write): zeroes the last page's tail past {@code li.size} and writes back every page
     * from the disk size to it. The page at the disk size may hold, on disk, bytes from before an
     * earlier truncate whose zeroing is still only in the cache (BufferedCrashTest saw them after
     * a truncate up, EngineEdgeCasesTest pins the direct-write case; XFS zeroes from the old EOF
     * likewise, xfs_file_write_zero_eof). Caller holds the rwsem exclusive.
     */
    void prepareGrowth(LiveInode li) throws IOException {
        long old = li.size;
        buffered.zeroAfterEof(li, old);
        writeback.writeback(li, Math.min(li.diskSize, old) / BLOCK, old / BLOCK + 1);
    }

    /** Commits {@code size} as the inode's disk size (with its pending times), and mtime/ctime now when {@code touch}. */
    private void saveSize(LiveInode li, long size, boolean touch) throws IOException {
        change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = inodes(op);
            InodeRecord.Builder b = li.flushTimes(load(inodes, li.ino).toBuilder());
            if (touch) {
                Timespec t = now();
                b.mtime = t;
                b.ctime = t;
            }
            b.size = size;
            save(inodes, li.ino, b.build());
            li.diskSize = size;
            return null;
        });
    }

    private static void requireRegular(LiveInode li, String call) throws ErrnoException {
        if (li.isDirectory()) {
            throw err(Errno.EISDIR, call, "inode " + li.ino + " is a directory");
        }
        if (!li.isRegular()) {
            throw err(Errno.EINVAL, call, "inode " + li.ino + " is not a regular file");
        }
    }

    /** Unmaps and frees every block from logical block {@code from} on, a few extents per transaction. */
    void freeBlocksFrom(long ino, long from) throws IOException {
        while (true) {
            boolean more = change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                BTree inodes = inodes(op);
                ExtentMap map = extentsForChange(op, inodes, ino, false);
                if (map == null) {
                    return false;
                }
                List<long[]> freed = map.removeFrom(from, EXTENTS_PER_TRUNCATE_STEP);
                freeRuns(op, inodes, ino, freed);
                return !freed.isEmpty();
            });
            if (!more) {
                return;
            }
        }
    }

    // ---- Vfs: files ----------------------------------------------------------------------------

    @Override
    public OpenFile open(long ino, int flags) throws IOException {
        InodeRecord r = look(store -> load(store, ino));
        OpenFile f = new OpenFile(nextFileId.getAndIncrement(), ino, flags);
        if (r.isDirectory() && f.writable()) {
            throw err(Errno.EISDIR, "open", "inode " + ino + " is a directory");
        }
        if (f.writable() && meta.isReadOnly() && (r.isRegular() || r.isDirectory())) {
            throw err(Errno.EROFS, "open", "the filesystem is mounted read-only");
        }
        if (r.nlink() == 0 && live.get(ino) == null) {
            throw err(Errno.ENOENT, "open", "inode " + ino + " has been removed");
        }
        ref(ino, true);
        openFiles.put(f.id(), f);
        if ((flags & OpenFile.O_TRUNC) != 0 && f.writable() && r.isRegular()) {
            truncate(ino, 0);
        }
        return f;
    }

    @Override
    public void release(OpenFile file) throws IOException {
        if (openFiles.remove(file.id()) == null) {
            return;
        }
        unref(file.ino());
    }

    /** Drops one open (of a file or a mapped view) and evicts the inode when nothing uses it. */
    void unref(long ino) throws IOException {
        LiveInode li = live.get(ino);
        if (li != null) {
            synchronized (li) {
                li.opens--;
            }
            evictIfUnused(ino, li);
        }
    }

    private void checkOpenFile(OpenFile file, boolean write, String call) throws ErrnoException {
        if (!openFiles.containsKey(file.id())) {
            throw err(Errno.EBADF, call, "file handle " + file.id() + " is not open");
        }
        if (write ? !file.writable() : !file.readable()) {
            throw err(Errno.EBADF, call, "file not open for " + (write ? "writing" : "reading"));
        }
        if (write && meta.isReadOnly()) {
            throw err(Errno.EROFS, call, "the filesystem is mounted read-only");
        }
    }

    @Override
    public int read(OpenFile file, long offset, MemorySegment dst) throws IOException {
        checkOpenFile(file, false, "read");
        if (offset < 0) {
            throw err(Errno.EINVAL, "read", "negative offset");
        }
        if (isDirect(file)) {
            return DirectIo.await(directRead(file, offset, dst, true));
        }
        LiveInode li = acquire(file.ino(), false);
        try {
            if (li.isDirectory()) {
                throw err(Errno.EISDIR, "read", "inode " + file.ino() + " is a directory");
            }
            int n = buffered.read(li, offset, dst);
            touchAtime(li);
            return n;
        } finally {
            li.rwsem.readLock().unlock();
        }
    }

    private static boolean isDirect(OpenFile file) {
        return (file.flags() & OpenFile.O_DIRECT) != 0;
    }

    @Override
    public CompletionStage<Integer> aioRead(OpenFile file, long offset, MemorySegment dst) throws IOException {
        return directRead(file, offset, dst, false);
    }

    /**
     * A direct read; {@code sync}: read(2) on an O_DIRECT file, whose device reads run on this
     * thread (no hand-off to the IO engine's completion thread and back: the latency of a
     * queue-depth-1 read is the device's), else the IO is submitted and the stage completes later.
     */
    private CompletableFuture<Integer> directRead(OpenFile file, long offset, MemorySegment dst, boolean sync)
            throws IOException {
        checkOpenFile(file, false, "read");
        if (offset < 0) {
            throw err(Errno.EINVAL, "read", "negative offset");
        }
        direct.checkAlignment("read", offset, dst.byteSize(), dst);
        LiveInode li = acquire(file.ino(), false);
        try {
            if (li.isDirectory()) {
                throw err(Errno.EISDIR, "read", "inode " + file.ino() + " is a directory");
            }
            CompletableFuture<Integer> f = direct.read(li, offset, dst, sync);
            touchAtime(li);
            return f;
        } finally {
            li.rwsem.readLock().unlock();
        }
    }

    @Override
    public CompletionStage<Integer> aioWrite(OpenFile file, long offset, MemorySegment src) throws IOException {
        return directWrite(file, offset, BufferedIo.Source.of(src), true);
    }

    @Override
    public CompletionStage<Integer> aioWrite(OpenFile file, long offset, MappedView src, long srcOffset, long length)
            throws IOException {
        return directWrite(file, offset, viewSource(src, srcOffset, length), true);
    }

    private static BufferedIo.Source viewSource(MappedView src, long srcOffset, long length) throws ErrnoException {
        if (!(src instanceof MappedFile view) || srcOffset < 0 || length < 0) {
            throw err(Errno.EINVAL, "write", "not a view of this filesystem, or a negative range");
        }
        return view.source(srcOffset, length);
    }

    /**
     * A direct write: rwsem shared for a block-aligned overwrite of written extents inside EOF,
     * exclusive otherwise (as ext4); released once the IO is submitted for an asynchronous
     * write that need not wait, after completion otherwise.
     */
    private CompletionStage<Integer> directWrite(OpenFile file, long offset, BufferedIo.Source src, boolean async)
            throws IOException {
        checkOpenFile(file, true, "write");
        if (offset < 0) {
            throw err(Errno.EINVAL, "write", "negative offset");
        }
        direct.checkAlignment("write", offset, src.size(), src.segment());
        boolean append = (file.flags() & OpenFile.O_APPEND) != 0;
        boolean exclusive = append;
        LiveInode li = acquire(file.ino(), exclusive);
        if (!exclusive && !direct.canWriteShared(li, offset, src.size())) {
            li.rwsem.readLock().unlock();
            exclusive = true;
            li = acquire(file.ino(), true);
        }
        try {
            requireRegular(li, "write");
            long pos = append ? li.size : offset;
            if (src.size() == 0) {
                return CompletableFuture.completedFuture(0);
            }
            if (pos + src.size() > MAX_FILE_SIZE) {
                throw err(Errno.EFBIG, "write", "the file would exceed " + MAX_FILE_SIZE + " bytes");
            }
            if (pos + src.size() > li.size) {
                trimPastEof(li);
                prepareGrowth(li);
            }
            boolean dsync = (file.flags() & OpenFile.O_DSYNC) != 0;
            return direct.write(li, pos, src, dsync, async);
        } finally {
            unlock(li, exclusive);
        }
    }

    /**
     * Updates the access time after a read when the mount's atime mode says so (not on read-only
     * mounts). Under relatime the answer stays "no" until mtime or ctime changes or a day passes,
     * which {@link LiveInode#atimeQuietUntil} remembers so that cached reads touch no metadata.
     */
    private void touchAtime(LiveInode li) throws IOException {
        if (atime == Atime.NOATIME || meta.isReadOnly()) {
            return;
        }
        long nowNanos = System.currentTimeMillis() * 1_000_000L;
        if (nowNanos < li.atimeQuietUntil) {
            return;
        }
        Timespec t = now();
        InodeRecord seen = li.overlay(look(store -> load(store, li.ino)));
        if (atime.due(seen, t)) {
            change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                BTree inodes = inodes(op);
                InodeRecord.Builder b = load(inodes, li.ino).toBuilder();
                b.atime = t;
                save(inodes, li.ino, b.build());
                return null;
            });
            if (atime == Atime.RELATIME) {
                li.atimeQuietUntil = (t.seconds() + 24 * 3600) * 1_000_000_000L;
            }
        } else if (atime == Atime.RELATIME) {
            li.atimeQuietUntil = (seen.atime().seconds() + 24 * 3600) * 1_000_000_000L;
        }
    }

    @Override
    public int write(OpenFile file, long offset, MemorySegment src) throws IOException {
        return write(file, offset, BufferedIo.Source.of(src));
    }

    @Override
    public int write(OpenFile file, long offset, MappedView src, long srcOffset, long length) throws IOException {
        return write(file, offset, viewSource(src, srcOffset, length));
    }

    private int write(OpenFile file, long offset, BufferedIo.Source src) throws IOException {
        if (isDirect(file)) {
            return DirectIo.await(directWrite(file, offset, src, false));
        }
        checkOpenFile(file, true, "write");
        if (offset < 0) {
            throw err(Errno.EINVAL, "write", "negative offset");
        }
        if (src.size() > Integer.MAX_VALUE) {
            throw err(Errno.EINVAL, "write", "more than 2 GiB in one call");
        }
        LiveInode li = acquire(file.ino(), true);
        long written;
        try {
            requireRegular(li, "write");
            long pos = (file.flags() & OpenFile.O_APPEND) != 0 ? li.size : offset;
            if (src.size() == 0) {
                return 0;
            }
            if (pos + src.size() > MAX_FILE_SIZE) {
                throw err(Errno.EFBIG, "write", "the file would exceed " + MAX_FILE_SIZE + " bytes");
            }
            if (pos + src.size() > li.size) {
                trimPastEof(li);
            }
            written = buffered.write(li, pos, src);
        } finally {
            li.rwsem.writeLock().unlock();
        }
        if ((file.flags() & OpenFile.O_DSYNC) != 0) {
            fsync(file, (file.flags() & OpenFile.O_SYNC) != OpenFile.O_SYNC);
        }
        return (int) written;
    }

    @Override
    public MappedView map(OpenFile file) throws IOException {
        checkOpenFile(file, false, "mmap");
        LiveInode li = ref(file.ino(), true);
        try {
            if (!li.isLoaded()) {
                loadLive(li);
            }
            requireRegular(li, "mmap");
        } catch (IOException | RuntimeException e) {
            unref(file.ino());
            throw e;
        }
        return new MappedFile(this, buffered, li, file.writable());
    }

    @Override
    public void fsync(OpenFile file, boolean dataOnly) throws IOException {
        checkOpen();
        LiveInode li = live.get(file.ino());
        if (li != null) {
            writeback.writebackInode(li);
            IOException failed = li.writebackError;
            if (failed != null) {
                li.writebackError = null; // reported once, as errseq does per file
                throw new ErrnoException(Errno.EIO, "fsync", "writeback of inode " + li.ino + " failed: "
                        + failed.getMessage());
            }
        }
        meta.commit();
        device.flush();
    }

    @Override
    public void flush(OpenFile file) throws IOException {
        if (!openFiles.containsKey(file.id())) {
            throw err(Errno.EBADF, "flush", "file handle " + file.id() + " is not open");
        }
        // close(2) does not write back (as ext4 and XFS); the flusher and fsync do.
    }

    @Override
    public void fallocate(OpenFile file, int mode, long offset, long length) throws IOException {
        if (!openFiles.containsKey(file.id()) || !file.writable()) {
            throw err(Errno.EBADF, "fallocate", "file not open for writing");
        }
        LiveInode li = acquire(file.ino(), true);
        try {
            requireRegular(li, "fallocate");
            li.awaitDio();
            if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) == 0) {
                requireSpace((length + BLOCK - 1) / BLOCK);
            }
            var invalidate = li.mapping(cache).invalidateLock().writeLock();
            invalidate.lock();
            try {
                long oldSize = li.size;
                long end = offset + length;
                if (end > oldSize && (mode & FALLOC_FL_KEEP_SIZE) == 0 && offset >= 0 && length > 0) {
                    trimPastEof(li);
                    prepareGrowth(li);
                }
                // Resolve delayed allocations and put cached data on disk, so the device is the
                // whole truth over the range; punch and zero then drop the range's pages.
                if (offset >= 0 && length > 0) {
                    writeback.writeback(li, offset / BLOCK, (end + BLOCK - 1) / BLOCK);
                }
                boolean clearsData = (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0;
                long newSize = data.fallocate(file.ino(), mode, offset, length, oldSize);
                if (clearsData) {
                    buffered.dropRange(li, offset / BLOCK, (end + BLOCK - 1) / BLOCK);
                }
                li.size = newSize;
                change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                    BTree inodes = inodes(op);
                    InodeRecord.Builder b = li.flushTimes(load(inodes, file.ino()).toBuilder());
                    Timespec t = now();
                    if (newSize != oldSize || clearsData) {
                        b.mtime = t;
                    }
                    if (newSize > oldSize) {
                        b.size = newSize;
                    }
                    b.ctime = t;
                    save(inodes, file.ino(), b.build());
                    li.diskSize = b.size;
                    return null;
                });
            } finally {
                invalidate.unlock();
            }
        } finally {
            li.rwsem.writeLock().unlock();
        }
    }

    @Override
    public long lseek(OpenFile file, long offset, int whence) throws IOException {
        checkOpenFile(file, false, "lseek");
        if (whence != SEEK_DATA && whence != SEEK_HOLE) {
            throw err(Errno.EINVAL, "lseek", "whence " + whence + " (this call serves SEEK_DATA and SEEK_HOLE)");
        }
        LiveInode li = acquire(file.ino(), false);
        try {
            if (offset >= 0 && offset < li.size) {
                // Cached data counts: put it on disk, where seek looks.
                writeback.writeback(li, offset / BLOCK, Long.MAX_VALUE);
            }
            return data.seek(file.ino(), offset, whence, li.size);
        } finally {
            li.rwsem.readLock().unlock();
        }
    }

    // ---- Vfs: extended attributes --------------------------------------------------------------

    @Override
    public byte[] getxattr(long ino, byte[] name) throws IOException {
        Xattrs.checkName(name, null, "getxattr");
        XattrCodec.Xattr x = look(store -> {
            load(store, ino);
            return Xattrs.find(trees.xattrs(store, null, false), ino, name);
        });
        if (x == null) {
            throw err(Errno.ENODATA, "getxattr", "no attribute '" + new String(name) + "' on inode " + ino);
        }
        return xattrs.value(x);
    }

    @Override
    public void setxattr(long ino, byte[] name, byte[] value, int flags) throws IOException {
        if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0) {
            throw err(Errno.EINVAL, "setxattr", "flags 0x" + Integer.toHexString(flags));
        }
        change(NAMESPACE_CREDITS, op -> {
            BTree inodes = inodes(op);
            InodeRecord r = load(inodes, ino);
            Xattrs.checkName(name, r, "setxattr");
            Xattrs.checkSet(trees.xattrs(op, op, false), ino, name, value, flags);
            xattrs.set(op, trees.xattrs(op, op, true), ino, name, value);
            InodeRecord.Builder b = r.toBuilder();
            b.ctime = now();
            save(inodes, ino, b.build());
            return null;
        });
    }

    @Override
    public List<byte[]> listxattr(long ino) throws IOException {
        return look(store -> {
            load(store, ino);
            return Xattrs.names(trees.xattrs(store, null, false), ino);
        });
    }

    @Override
    public void removexattr(long ino, byte[] name) throws IOException {
        Xattrs.checkName(name, null, "removexattr");
        change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = inodes(op);
            InodeRecord r = load(inodes, ino);
            BTree tree = trees.xattrs(op, op, false);
            if (tree == null) {
                throw err(Errno.ENODATA, "removexattr", "no attribute '" + new String(name) + "'");
            }
            Xattrs.remove(op, tree, ino, name);
            InodeRecord.Builder b = r.toBuilder();
            b.ctime = now();
            save(inodes, ino, b.build());
            return null;
        });
    }

    // ---- Vfs: directories and the filesystem ---------------------------------------------------

    @Override
    public List<DirEntry> readdir(long ino, long cookie, int max) throws IOException {
        return look(store -> {
            BTree inodes = trees.inodes(store, null);
            InodeRecord dir = directory(inodes, ino, "readdir");
            List<DirEntry> out = new ArrayList<>();
            if (cookie == 0 && out.size() < max) {
                out.add(new DirEntry(new byte[] {'.'}, ino, S_IFDIR, 1));
            }
            if (cookie <= 1 && out.size() < max) {
                out.add(new DirEntry(new byte[] {'.', '.'}, dir.parent(), S_IFDIR, 2));
            }
            BTreeCursor c = trees.dirents(store, null).scan(DirentCodec.key(ino, Math.max(cookie, 0)));
            while (out.size() < max && c.next()) {
                Dirent d = DirentCodec.decode(c.key(), c.value());
                if (d.parent() != ino) {
                    break;
                }
                out.add(new DirEntry(d.name(), d.child(), d.type() << 12, d.position() + 1));
            }
            return out;
        });
    }

    @Override
    public boolean readAroundWelcome() {
        return buffered.readAroundWelcome();
    }

    @Override
    public StatFs statfs() throws IOException {
        checkOpen();
        // As ext4: blocks promised to delayed allocations count as used (df shows data written
        // but not yet allocated); blocks freed by a transaction not yet checkpointed count as
        // free and available (an allocation that needs them checkpoints first, see
        // retryAfterCheckpoint), so space comes back as soon as a file is deleted; the emergency
        // reserve is free but not available, like ext4's blocks reserved for root.
        io.coherentfs.core.alloc.StatFs s = meta.allocator().statfs();
        long emergency = Math.min(meta.emergencyBlocks(), s.reservedBlocks());
        long available = Math.max(0, s.freeBlocks() - s.reservedBlocks());
        long free = available + emergency;
        long inodesUsed = meta.superblock().nextInode();
        long inodeRoom = Math.max(available * 8, 0);
        return new StatFs(BLOCK, s.totalBlocks(), free, available, inodesUsed + inodeRoom,
                inodeRoom, DirentCodec.NAME_MAX);
    }

    @Override
    public void sync() throws IOException {
        checkOpen();
        IOException first = null;
        for (LiveInode li : liveInodes()) {
            try {
                writeback.writebackInode(li);
            } catch (IOException e) {
                first = first == null ? e : first;
            }
        }
        meta.commit();
        device.flush();
        if (first != null) {
            throw first;
        }
    }

    /**
     * remount,ro and remount,rw. Going read-only writes back every inode (as {@link #sync}), then
     * commits, checkpoints and marks the image clean, so it is consistent on disk while read-only;
     * afterwards opens for writing and writes through handles opened before fail with EROFS.
     * Writers still busy when it is called may fail half-way: the caller stops them first (the
     * kernel refuses a remount,ro while any file is open for writing). Going read-write needs a
     * device opened writable (EROFS otherwise), then marks the image in use, frees the orphans a
     * read-only mount kept and starts the flusher.
     */
    public synchronized void remount(boolean readOnly) throws IOException {
        checkOpen();
        if (readOnly == meta.isReadOnly()) {
            return;
        }
        if (readOnly) {
            sync();
            meta.remountReadOnly();
        } else {
            meta.remountReadWrite();
            reapOrphans();
            writeback.start();
        }
    }

    public boolean isReadOnly() {
        return meta.isReadOnly();
    }

    // ---- eviction ------------------------------------------------------------------------------

    /**
     * Called when a reference to {@code ino} went. Once nothing uses the inode: an orphan is
     * evicted and freed at once; a named inode is kept cached ({@link #keepUnused}).
     */
    private void evictIfUnused(long ino, LiveInode li) throws IOException {
        if (li == null) {
            InodeRecord r = recordOrNull(ino);
            if (r != null && r.nlink() == 0 && (r.flags() & InodeRecord.FLAG_ORPHAN) != 0) {
                evict(ino);
            }
            return;
        }
        synchronized (li) {
            if (li.dead || li.lookups != 0 || li.opens != 0) {
                return;
            }
        }
        InodeRecord r = recordOrNull(ino);
        boolean orphan = r == null || (r.nlink() == 0 && (r.flags() & InodeRecord.FLAG_ORPHAN) != 0);
        if (!orphan && !closed) {
            keepUnused(ino, li);
            return;
        }
        evictNow(ino, li);
    }

    /**
     * An inode nothing uses any more but that still has a name stays cached, with its pages,
     * dirty ones included, as the kernel's inode cache keeps it after the last close: the
     * flusher writes its data back in its own time and the page cache's policy reclaims its
     * clean pages, instead of a synchronous write-back of everything at every last close (which
     * through FUSE, where lookups are never held, was every close). Beyond
     * {@link #UNUSED_INODES_CACHED} the least recently released are evicted.
     */
    private void keepUnused(long ino, LiveInode li) throws IOException {
        List<Map.Entry<Long, LiveInode>> over = new ArrayList<>();
        synchronized (unused) {
            unused.put(ino, li);
            while (unused.size() > UNUSED_INODES_CACHED) {
                Map.Entry<Long, LiveInode> eldest = unused.entrySet().iterator().next();
                unused.remove(eldest.getKey());
                over.add(eldest);
            }
        }
        for (Map.Entry<Long, LiveInode> e : over) {
            evictNow(e.getKey(), e.getValue()); // a no-op for one that is in use again
        }
    }

    /**
     * Evicts {@code li} if it is still unused: writes back and drops its cached pages (or, for an
     * orphan, just drops them and frees the inode) and forgets it. Holds the inode's rwsem
     * exclusive throughout, so nobody can use the mapping being torn down; see
     * {@link LiveInode} for the protocol.
     */
    private void evictNow(long ino, LiveInode li) throws IOException {
        li.rwsem.writeLock().lock();
        try {
            synchronized (li) {
                if (li.dead || li.lookups != 0 || li.opens != 0) {
                    return;
                }
                li.dead = true;
            }
            li.awaitDio();
            try {
                InodeRecord r = recordOrNull(ino);
                boolean orphan = r != null && r.nlink() == 0 && (r.flags() & InodeRecord.FLAG_ORPHAN) != 0;
                if (r != null && !orphan && li.mappingOrNull() != null && !meta.isReadOnly()) {
                    writeback.writebackInode(li);
                }
                buffered.dropRange(li, 0, Long.MAX_VALUE);
                if (orphan) {
                    evict(ino);
                }
            } finally {
                live.remove(ino, li);
                synchronized (unused) {
                    unused.remove(ino, li);
                }
            }
        } finally {
            li.rwsem.writeLock().unlock();
        }
    }

    private InodeRecord recordOrNull(long ino) throws IOException {
        try {
            return look(store -> load(store, ino));
        } catch (ErrnoException.NoEntryException gone) {
            return null;
        }
    }

    /**
     * Frees an orphan inode: its blocks, its extent map, its record and its orphan entry. Two
     * threads dropping the last references at once may both get here: the second finds the
     * inode gone and stops.
     */
    private void evict(long ino) throws IOException {
        try {
            evictOrphan(ino);
        } catch (ErrnoException.NoEntryException alreadyFreed) {
            // evicted by another thread
        }
    }

    private void evictOrphan(long ino) throws IOException {
        freeBlocksFrom(ino, 0);
        change(NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
            BTree inodes = inodes(op);
            ExtentMap map = extentsForChange(op, inodes, ino, false);
            if (map != null) {
                map.tree().destroy();
            }
            Xattrs.removeAll(op, trees.xattrs(op, op, false), ino);
            inodes.delete(Trees.inoKey(ino));
            trees.orphans(op, op).delete(Trees.inoKey(ino));
            return null;
        });
    }

    /** Mount: frees every orphan a crash or an unclean unmount left behind. */
    private void reapOrphans() throws IOException {
        List<Long> orphans = look(store -> {
            List<Long> out = new ArrayList<>();
            BTreeCursor c = trees.orphans(store, null).scan(null);
            while (c.next()) {
                out.add(Trees.inoOf(c.key()));
            }
            return out;
        });
        for (long ino : orphans) {
            evict(ino);
        }
    }

    /** The registry holding the engine's meters. */
    public MeterRegistry metrics() {
        return metrics;
    }

    /** The page cache (for metrics and tests). */
    public PageCache pageCache() {
        return cache;
    }

    /** Writes back everything, frees orphans still open, marks the image clean and closes it. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        writeback.close();
        IOException failed = null;
        try {
            for (LiveInode li : liveInodes()) {
                li.awaitDio();
            }
            direct.close();
            if (!meta.isReadOnly() && !meta.journal().isAborted()) {
                for (LiveInode li : liveInodes()) {
                    InodeRecord r = recordOrNull(li.ino);
                    if (r == null) {
                        continue;
                    }
                    if (r.nlink() == 0 && (r.flags() & InodeRecord.FLAG_ORPHAN) != 0) {
                        buffered.dropRange(li, 0, Long.MAX_VALUE);
                        evict(li.ino);
                    } else {
                        try {
                            writeback.writebackInode(li);
                        } catch (IOException e) {
                            // one inode's failed writeback must not keep the others' data back
                            failed = failed == null ? e : failed;
                        }
                    }
                }
            }
        } finally {
            closed = true;
            try {
                meta.close();
            } finally {
                pool.close();
            }
        }
        if (failed != null) {
            throw failed;
        }
    }
}
