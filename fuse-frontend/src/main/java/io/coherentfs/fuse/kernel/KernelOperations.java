package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.DirEntry;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.fuse.FuseMetrics;
import io.coherentfs.fuse.FuseMetrics.Op;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The FUSE low-level operations onto the {@link Vfs}: one handler per opcode, each decoding its
 * body, making its Vfs calls and replying once. Node ids are inode numbers (FUSE_ROOT_ID ==
 * {@link Vfs#ROOT}); every entry reply (LOOKUP, MKNOD, MKDIR, SYMLINK, LINK, CREATE) hands the
 * kernel the lookup the Vfs counted, and FORGET / BATCH_FORGET give them back.
 *
 * <h2>Errors</h2>
 * An {@link ErrnoException} is answered with exactly its errno; anything else is EIO and logged.
 * LOOKUP's ENOENT is answered as a negative entry instead, which the kernel caches for
 * {@link #NEGATIVE_SECONDS}.
 *
 * <h2>Open files and the kernel's page cache</h2>
 * As in the libfuse transport (README "The kernel's page cache"): an O_DIRECT open gets
 * FOPEN_DIRECT_IO (every read and write reaches the engine's direct path) and
 * FOPEN_PARALLEL_DIRECT_WRITES (the kernel need not serialize them per inode); a buffered open
 * gets FOPEN_KEEP_CACHE. Node ids are inodes here, so hard links share one kernel inode and
 * its cache (libfuse 2's path API gave each name its own; no exception is needed).
 * After a write through a direct handle the kernel is told to drop the range from its page cache
 * (FUSE_NOTIFY_INVAL_INODE, before the reply, by {@link DirectWriteReplies}): with FUSE_ASYNC_DIO
 * the kernel does not invalidate after an asynchronous direct write itself, and a buffered reader
 * would keep stale pages.
 * A write-back of the kernel's cached pages of a direct handle (shared mmap with
 * DIRECT_IO_ALLOW_MMAP; FUSE_WRITE_CACHE, not sector-aligned at EOF) goes through a buffered
 * companion handle of the same inode.
 * A small buffered READ is followed by a read-around store into the kernel's page cache
 * ({@link KernelCacheFill}); opens with write access, creates for writing and size changes are
 * answered through its store gate.
 *
 * <p>Thread-safe: called from every worker thread at once; the state is the Vfs (thread-safe)
 * and the concurrent open-file tables.
 */
final class KernelOperations {
    private static final Logger LOG = Logger.getLogger(KernelOperations.class.getName());

    /** Entry and negative-entry timeouts in seconds; attributes are never cached (README "Attribute and entry timeouts"). */
    static final long ENTRY_SECONDS = 5;
    static final long NEGATIVE_SECONDS = 5;
    static final long ATTR_SECONDS = 0;

    static final int S_IFMT = 0xF000;
    static final int S_IFREG = 0x8000;
    static final int O_EXCL = 0x80;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;

    private final Vfs vfs;
    private final FuseMetrics metrics;
    /** Null only with {@code unsafe_no_direct_write_invalidation}. */
    private final DirectWriteReplies directWriteReplies;
    private final KernelCacheFill cacheFill;
    private final RacePoints race;
    private final boolean keepCache;
    /** Open files by fh (== OpenFile.id()). */
    private final ConcurrentHashMap<Long, OpenFile> files = new ConcurrentHashMap<>();
    /** Buffered companions of direct handles, by the direct handle's fh; made on first cache write-back. */
    private final ConcurrentHashMap<Long, OpenFile> companions = new ConcurrentHashMap<>();

    /** Race point (tests): a direct handle's WRITE has reached us and not yet the engine. */
    static final String RACE_DIRECT_WRITE = "kernel-dio.write-received";

    KernelOperations(Vfs vfs, FuseMetrics metrics, DirectWriteReplies directWriteReplies, KernelCacheFill cacheFill,
            RacePoints race, boolean keepCache) {
        this.race = race;
        this.vfs = vfs;
        this.metrics = metrics;
        this.directWriteReplies = directWriteReplies;
        this.cacheFill = cacheFill;
        this.keepCache = keepCache;
    }

    int openFiles() {
        return files.size();
    }

    /** The per-thread buffers a handler may use. */
    record Buffers(Reply reply, MemorySegment data) {}

    @FunctionalInterface
    private interface Handler {
        void run() throws IOException;
    }

    /**
     * Answers {@code r}. Never throws for a request's failure (that is the reply); throws only
     * when the reply itself cannot be written.
     */
    void dispatch(FuseRequest r, Buffers b) throws ErrnoException {
        Reply out = b.reply();
        switch (r.opcode()) {
            case FuseAbi.LOOKUP -> call(Op.LOOKUP, out, () -> lookup(r, out));
            case FuseAbi.FORGET -> {
                call(Op.FORGET, null, () -> vfs.forget(r.nodeid(), r.body(FuseAbi.FORGET_IN_BYTES).get(JAVA_LONG, 0)));
                out.none();
            }
            case FuseAbi.BATCH_FORGET -> {
                call(Op.FORGET, null, () -> batchForget(r));
                out.none();
            }
            case FuseAbi.GETATTR -> call(Op.GETATTR, out, () -> attr(out, vfs.getattr(r.nodeid())));
            case FuseAbi.SETATTR -> call(Op.SETATTR, out, () -> setattr(r, out));
            case FuseAbi.READLINK -> call(Op.READLINK, out, () -> bytes(out, vfs.readlink(r.nodeid())));
            case FuseAbi.SYMLINK -> call(Op.SYMLINK, out, () -> symlink(r, out));
            case FuseAbi.MKNOD -> call(Op.MKNOD, out, () -> mknod(r, out));
            case FuseAbi.MKDIR -> call(Op.MKDIR, out, () -> mkdir(r, out));
            case FuseAbi.UNLINK -> call(Op.UNLINK, out, () -> {
                vfs.unlink(r.nodeid(), FuseRequest.string(r.body(), 0));
                out.ok();
            });
            case FuseAbi.RMDIR -> call(Op.RMDIR, out, () -> {
                vfs.rmdir(r.nodeid(), FuseRequest.string(r.body(), 0));
                out.ok();
            });
            case FuseAbi.RENAME -> call(Op.RENAME, out, () -> rename(r, out, FuseAbi.RENAME_IN_BYTES, 0));
            case FuseAbi.RENAME2 -> call(Op.RENAME, out, () -> rename(r, out, FuseAbi.RENAME2_IN_BYTES,
                    r.body(FuseAbi.RENAME2_IN_BYTES).get(JAVA_INT, 8)));
            case FuseAbi.LINK -> call(Op.LINK, out, () -> link(r, out));
            case FuseAbi.OPEN -> call(Op.OPEN, out, () -> open(r, out));
            case FuseAbi.CREATE -> call(Op.CREATE, out, () -> create(r, out));
            case FuseAbi.READ -> call(Op.READ, out, () -> read(r, b));
            case FuseAbi.WRITE -> call(Op.WRITE, out, () -> write(r, out));
            case FuseAbi.STATFS -> call(Op.STATFS, out, () -> {
                FuseStructs.putStatfs(out.payload(), 0, vfs.statfs());
                out.send(FuseAbi.STATFS_OUT_BYTES);
            });
            case FuseAbi.RELEASE -> call(Op.RELEASE, out, () -> release(r, out));
            case FuseAbi.FSYNC -> call(Op.FSYNC, out, () -> {
                MemorySegment in = r.body(FuseAbi.FSYNC_IN_BYTES);
                vfs.fsync(file(in.get(JAVA_LONG, 0)), (in.get(JAVA_INT, 8) & FuseAbi.FSYNC_FDATASYNC) != 0);
                out.ok();
            });
            case FuseAbi.FLUSH -> call(Op.FLUSH, out, () -> {
                vfs.flush(file(r.body(FuseAbi.FLUSH_IN_BYTES).get(JAVA_LONG, 0)));
                out.ok();
            });
            case FuseAbi.SETXATTR -> call(Op.SETXATTR, out, () -> setxattr(r, out));
            case FuseAbi.GETXATTR -> call(Op.GETXATTR, out, () -> getxattr(r, out));
            case FuseAbi.LISTXATTR -> call(Op.LISTXATTR, out, () -> listxattr(r, out));
            case FuseAbi.REMOVEXATTR -> call(Op.REMOVEXATTR, out, () -> {
                vfs.removexattr(r.nodeid(), FuseRequest.string(r.body(), 0));
                out.ok();
            });
            case FuseAbi.OPENDIR -> call(Op.OPENDIR, out, () -> {
                if (!vfs.getattr(r.nodeid()).isDirectory()) {
                    throw errno(Errno.ENOTDIR, "opendir");
                }
                FuseStructs.putOpenOut(out.payload(), 0, r.nodeid(), 0);
                out.send(FuseAbi.OPEN_OUT_BYTES);
            });
            case FuseAbi.READDIR -> call(Op.READDIR, out, () -> readdir(r, out));
            case FuseAbi.RELEASEDIR -> call(Op.RELEASEDIR, out, out::ok);
            case FuseAbi.FSYNCDIR -> call(Op.FSYNCDIR, out, () -> {
                vfs.sync(); // directory changes are journaled: committing makes them durable
                out.ok();
            });
            case FuseAbi.SYNCFS -> call(Op.SYNCFS, out, () -> {
                vfs.sync();
                out.ok();
            });
            case FuseAbi.FALLOCATE -> call(Op.FALLOCATE, out, () -> {
                MemorySegment in = r.body(FuseAbi.FALLOCATE_IN_BYTES);
                vfs.fallocate(file(in.get(JAVA_LONG, 0)), in.get(JAVA_INT, 24), in.get(JAVA_LONG, 8),
                        in.get(JAVA_LONG, 16));
                out.ok();
            });
            case FuseAbi.LSEEK -> call(Op.LSEEK, out, () -> lseek(r, out));
            case FuseAbi.INTERRUPT -> out.none(); // requests run to completion; the kernel copes
            // ACCESS: with default_permissions the kernel checks modes itself; ENOSYS makes it stop
            // asking. GETLK/SETLK: ENOSYS keeps POSIX locks local to the kernel. The rest we do not do.
            default -> out.error(Errno.ENOSYS.code());
        }
    }

    /** Runs a handler: its ErrnoException becomes that errno, anything else EIO (logged). {@code out} null: no reply. */
    private void call(Op op, Reply out, Handler h) throws ErrnoException {
        long t = metrics.start();
        int errno = 0;
        try {
            h.run();
        } catch (IOException | RuntimeException | Error e) {
            errno = metrics.failed(op, e, LOG);
        } finally {
            metrics.done(op, t);
        }
        if (errno != 0 && out != null && !out.sent()) {
            out.error(errno);
        }
    }

    private static ErrnoException errno(Errno e, String call) {
        return ErrnoException.of(e.code(), call, null);
    }

    private OpenFile file(long fh) throws ErrnoException {
        OpenFile f = files.get(fh);
        if (f == null) {
            throw errno(Errno.EBADF, "fh");
        }
        return f;
    }

    private static Caller caller(FuseRequest r) {
        return new Caller(r.uid(), r.gid());
    }

    // ---- replies -------------------------------------------------------------------------------

    private static void entry(Reply out, Attr a) throws ErrnoException {
        FuseStructs.putEntry(out.payload(), 0, a, ENTRY_SECONDS, ATTR_SECONDS);
        out.send(FuseAbi.ENTRY_OUT_BYTES);
    }

    private static void attr(Reply out, Attr a) throws ErrnoException {
        FuseStructs.putAttrOut(out.payload(), 0, a, ATTR_SECONDS);
        out.send(FuseAbi.ATTR_OUT_BYTES);
    }

    private static void bytes(Reply out, byte[] v) throws ErrnoException {
        MemorySegment.copy(v, 0, out.payload(), JAVA_BYTE, 0, v.length);
        out.send(v.length);
    }

    // ---- namespace -----------------------------------------------------------------------------

    private void lookup(FuseRequest r, Reply out) throws IOException {
        Attr a;
        try {
            a = vfs.lookup(r.nodeid(), FuseRequest.string(r.body(), 0));
        } catch (ErrnoException e) {
            if (e.errno() != Errno.ENOENT.code()) {
                throw e;
            }
            FuseStructs.putEntry(out.payload(), 0, null, NEGATIVE_SECONDS, 0);
            out.send(FuseAbi.ENTRY_OUT_BYTES);
            return;
        }
        entry(out, a);
    }

    private void batchForget(FuseRequest r) throws IOException {
        MemorySegment in = r.body(FuseAbi.BATCH_FORGET_IN_BYTES);
        int count = in.get(JAVA_INT, 0);
        long at = FuseAbi.BATCH_FORGET_IN_BYTES;
        IOException first = null;
        for (int i = 0; i < count && at + FuseAbi.FORGET_ONE_BYTES <= in.byteSize(); i++, at += FuseAbi.FORGET_ONE_BYTES) {
            try {
                vfs.forget(in.get(JAVA_LONG, at), in.get(JAVA_LONG, at + 8));
            } catch (IOException e) {
                first = first == null ? e : first; // forget the others anyway
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private void mknod(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.MKNOD_IN_BYTES);
        int mode = in.get(JAVA_INT, 0); // umask already applied: no FUSE_DONT_MASK
        long rdev = Integer.toUnsignedLong(in.get(JAVA_INT, 4));
        entry(out, vfs.mknod(r.nodeid(), FuseRequest.string(in, FuseAbi.MKNOD_IN_BYTES), mode, rdev, caller(r)));
    }

    private void mkdir(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.MKDIR_IN_BYTES);
        int mode = in.get(JAVA_INT, 0) & 07777;
        entry(out, vfs.mkdir(r.nodeid(), FuseRequest.string(in, FuseAbi.MKDIR_IN_BYTES), mode, caller(r)));
    }

    private void symlink(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body();
        byte[] name = FuseRequest.string(in, 0);
        byte[] target = FuseRequest.string(in, name.length + 1);
        entry(out, vfs.symlink(r.nodeid(), name, target, caller(r)));
    }

    private void link(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.LINK_IN_BYTES);
        long existing = in.get(JAVA_LONG, 0);
        entry(out, vfs.link(existing, r.nodeid(), FuseRequest.string(in, FuseAbi.LINK_IN_BYTES)));
    }

    /** RENAME and RENAME2: renameat2's NOREPLACE and EXCHANGE reach the Vfs; WHITEOUT and the rest are EINVAL. */
    private void rename(FuseRequest r, Reply out, int fixed, int flags) throws IOException {
        if ((flags & ~(FuseAbi.RENAME_NOREPLACE | FuseAbi.RENAME_EXCHANGE)) != 0) {
            throw errno(Errno.EINVAL, "rename2");
        }
        MemorySegment in = r.body(fixed);
        long newParent = in.get(JAVA_LONG, 0);
        byte[] name = FuseRequest.string(in, fixed);
        byte[] newName = FuseRequest.string(in, fixed + name.length + 1);
        int vfsFlags = ((flags & FuseAbi.RENAME_NOREPLACE) != 0 ? Vfs.RENAME_NOREPLACE : 0)
                | ((flags & FuseAbi.RENAME_EXCHANGE) != 0 ? Vfs.RENAME_EXCHANGE : 0);
        vfs.rename(r.nodeid(), name, newParent, newName, vfsFlags);
        out.ok();
    }

    // ---- attributes ----------------------------------------------------------------------------

    /**
     * SETATTR: chmod (the kernel sends the type bits too: only the permission bits are ours),
     * chown (-1 never arrives: the kernel leaves the bit out), truncate (FATTR_SIZE, with
     * FATTR_FH for ftruncate and open(O_TRUNC) — same inode either way) and utimensat
     * (FATTR_ATIME_NOW / FATTR_MTIME_NOW are UTIME_NOW; an omitted time has no bit).
     * FATTR_CTIME only comes with the writeback cache, which we never negotiate.
     */
    private void setattr(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.SETATTR_IN_BYTES);
        int valid = in.get(JAVA_INT, FuseAbi.SETATTR_VALID);
        Integer mode = (valid & FuseAbi.FATTR_MODE) != 0 ? in.get(JAVA_INT, FuseAbi.SETATTR_MODE) & 07777 : null;
        Integer uid = (valid & FuseAbi.FATTR_UID) != 0 ? in.get(JAVA_INT, FuseAbi.SETATTR_UID) : null;
        Integer gid = (valid & FuseAbi.FATTR_GID) != 0 ? in.get(JAVA_INT, FuseAbi.SETATTR_GID) : null;
        Long size = (valid & FuseAbi.FATTR_SIZE) != 0 ? in.get(JAVA_LONG, FuseAbi.SETATTR_SIZE) : null;
        boolean atimeNow = (valid & FuseAbi.FATTR_ATIME_NOW) != 0;
        boolean mtimeNow = (valid & FuseAbi.FATTR_MTIME_NOW) != 0;
        Timespec atime = (valid & FuseAbi.FATTR_ATIME) != 0 && !atimeNow
                ? new Timespec(in.get(JAVA_LONG, FuseAbi.SETATTR_ATIME), in.get(JAVA_INT, FuseAbi.SETATTR_ATIMENSEC))
                : null;
        Timespec mtime = (valid & FuseAbi.FATTR_MTIME) != 0 && !mtimeNow
                ? new Timespec(in.get(JAVA_LONG, FuseAbi.SETATTR_MTIME), in.get(JAVA_INT, FuseAbi.SETATTR_MTIMENSEC))
                : null;
        SetAttr change = new SetAttr(mode, uid, gid, size, atime, atimeNow, mtime, mtimeNow);
        if (change.equals(SetAttr.NONE)) {
            attr(out, vfs.getattr(r.nodeid()));
        } else if (size != null) {
            long ino = r.nodeid();
            cacheFill.whenNoStore(Op.SETATTR, ino, r.unique(), out, reply -> attr(reply, vfs.setattr(ino, change)));
        } else {
            attr(out, vfs.setattr(r.nodeid(), change));
        }
    }

    // ---- files ---------------------------------------------------------------------------------

    private void open(FuseRequest r, Reply out) throws IOException {
        int flags = r.body(FuseAbi.OPEN_IN_BYTES).get(JAVA_INT, 0);
        long ino = r.nodeid();
        KernelCacheFill.Deferred finish = reply -> {
            OpenFile f = openCounted(ino, flags);
            FuseStructs.putOpenOut(reply.payload(), 0, f.id(), opened(f));
            reply.send(FuseAbi.OPEN_OUT_BYTES);
        };
        if (writer(flags)) {
            cacheFill.writerOpens(Op.OPEN, ino, r.unique(), out, finish);
        } else {
            finish.finish(out);
        }
    }

    private static boolean writer(int openFlags) {
        return (openFlags & OpenFile.O_ACCMODE) != OpenFile.O_RDONLY;
    }

    /**
     * Opens; a handle with write access was counted by {@link KernelCacheFill#writerOpens} (its
     * store gate), and is uncounted again if the open fails.
     */
    private OpenFile openCounted(long ino, int flags) throws IOException {
        try {
            return vfs.open(ino, flags);
        } catch (IOException | RuntimeException e) {
            if (writer(flags)) {
                cacheFill.writerClosed(ino);
            }
            throw e;
        }
    }

    /**
     * CREATE: the kernel sends it for a name its dcache says is absent. Another creator may have
     * won meanwhile: without O_EXCL we open theirs (a lookup counts the entry we reply with).
     */
    private void create(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.CREATE_IN_BYTES);
        int flags = in.get(JAVA_INT, 0);
        int mode = in.get(JAVA_INT, 4);
        byte[] name = FuseRequest.string(in, FuseAbi.CREATE_IN_BYTES);
        Attr a;
        try {
            a = vfs.mknod(r.nodeid(), name, S_IFREG | (mode & 07777), 0, caller(r));
        } catch (ErrnoException e) {
            if (e.errno() != Errno.EEXIST.code() || (flags & O_EXCL) != 0) {
                throw e;
            }
            a = vfs.lookup(r.nodeid(), name);
        }
        Attr entry = a;
        KernelCacheFill.Deferred finish = reply -> {
            OpenFile f;
            try {
                f = openCounted(entry.ino(), flags);
            } catch (IOException | RuntimeException e) {
                vfs.forget(entry.ino(), 1); // the kernel never learns of the entry
                throw e;
            }
            int openFlags = opened(f);
            MemorySegment p = reply.payload();
            FuseStructs.putEntry(p, 0, entry, ENTRY_SECONDS, ATTR_SECONDS);
            FuseStructs.putOpenOut(p, FuseAbi.ENTRY_OUT_BYTES, f.id(), openFlags);
            reply.send(FuseAbi.ENTRY_OUT_BYTES + FuseAbi.OPEN_OUT_BYTES);
        };
        if (writer(flags)) {
            cacheFill.writerOpens(Op.CREATE, entry.ino(), r.unique(), out, finish);
        } else {
            finish.finish(out);
        }
    }

    /** Files the handle; returns the FOPEN_* flags for it. */
    private int opened(OpenFile f) {
        files.put(f.id(), f);
        if ((f.flags() & OpenFile.O_DIRECT) != 0) {
            return FuseAbi.FOPEN_DIRECT_IO | FuseAbi.FOPEN_PARALLEL_DIRECT_WRITES;
        }
        return keepCache ? FuseAbi.FOPEN_KEEP_CACHE : 0;
    }

    private static boolean direct(OpenFile f) {
        return (f.flags() & OpenFile.O_DIRECT) != 0;
    }

    /** READ: into this thread's page-aligned buffer (the engine's direct path needs it), sent from there. */
    private void read(FuseRequest r, Buffers b) throws IOException {
        MemorySegment in = r.body(FuseAbi.READ_IN_BYTES);
        OpenFile f = file(in.get(JAVA_LONG, FuseAbi.READ_FH));
        long offset = in.get(JAVA_LONG, FuseAbi.READ_OFFSET);
        long size = Integer.toUnsignedLong(in.get(JAVA_INT, FuseAbi.READ_SIZE));
        if (size > b.data().byteSize()) {
            throw new ErrnoException(Errno.EINVAL, "read", "request of " + size + " bytes exceeds max_read");
        }
        int n = vfs.read(f, offset, b.data().asSlice(0, size));
        (direct(f) ? metrics.readDirect : metrics.readBuffered).record(n);
        b.reply().sendData(b.data().asSlice(0, n));
        if (!direct(f)) {
            cacheFill.missed(f.ino(), offset, size);
        }
    }

    /**
     * WRITE: the data is in the request buffer, 4096-aligned by where the worker reads (see
     * {@link KernelSession}), so a direct handle's write goes to the engine without a copy.
     */
    private void write(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.WRITE_IN_BYTES);
        long fh = in.get(JAVA_LONG, FuseAbi.WRITE_FH);
        long offset = in.get(JAVA_LONG, FuseAbi.WRITE_OFFSET);
        long size = Integer.toUnsignedLong(in.get(JAVA_INT, FuseAbi.WRITE_SIZE));
        int writeFlags = in.get(JAVA_INT, FuseAbi.WRITE_WRITE_FLAGS);
        if (FuseAbi.WRITE_IN_BYTES + size > in.byteSize()) {
            throw new ErrnoException(Errno.EINVAL, "write", "request carries less data than its size " + size);
        }
        MemorySegment data = in.asSlice(FuseAbi.WRITE_IN_BYTES, size);
        OpenFile f = file(fh);
        boolean direct = direct(f);
        if (direct && (writeFlags & FuseAbi.WRITE_CACHE) != 0) {
            f = companion(f);
            direct = false;
        }
        if (direct) {
            race.hit(RACE_DIRECT_WRITE);
        }
        int n = vfs.write(f, offset, data);
        (direct ? metrics.writeDirect : metrics.writeBuffered).record(n);
        if (direct && n > 0 && directWriteReplies != null) {
            out.none(); // answered after the invalidation, off this worker
            directWriteReplies.reply(r.unique(), r.nodeid(), offset, n);
            return;
        }
        out.payload().set(JAVA_LONG, 0, Integer.toUnsignedLong(n));
        out.send(FuseAbi.WRITE_OUT_BYTES);
    }

    private OpenFile companion(OpenFile direct) throws IOException {
        OpenFile c = companions.get(direct.id());
        if (c != null) {
            return c;
        }
        synchronized (companions) {
            c = companions.get(direct.id());
            if (c == null) {
                c = vfs.open(direct.ino(), OpenFile.O_RDWR);
                companions.put(direct.id(), c);
            }
            return c;
        }
    }

    private void release(FuseRequest r, Reply out) throws IOException {
        long fh = r.body(FuseAbi.RELEASE_IN_BYTES).get(JAVA_LONG, 0);
        OpenFile f = files.remove(fh);
        OpenFile c = companions.remove(fh);
        try {
            if (c != null) {
                vfs.release(c);
            }
        } finally {
            if (f != null) {
                try {
                    vfs.release(f);
                } finally {
                    if (f.writable()) {
                        cacheFill.writerClosed(f.ino());
                    }
                }
            }
        }
        out.ok();
    }

    private void lseek(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.LSEEK_IN_BYTES);
        OpenFile f = file(in.get(JAVA_LONG, 0));
        long offset = in.get(JAVA_LONG, 8);
        int whence = in.get(JAVA_INT, 16);
        if (whence != SEEK_DATA && whence != SEEK_HOLE) {
            throw errno(Errno.EINVAL, "lseek"); // SEEK_SET/CUR/END the kernel does itself
        }
        out.payload().set(JAVA_LONG, 0, vfs.lseek(f, offset, whence));
        out.send(FuseAbi.LSEEK_OUT_BYTES);
    }

    // ---- directories ---------------------------------------------------------------------------

    /**
     * READDIR: fuse_dirent records from the entry after {@code offset} (a {@link DirEntry#nextCookie}),
     * as many as fit in the size the kernel asked for; the kernel asks again from the last
     * record's offset.
     */
    private void readdir(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.READ_IN_BYTES);
        long cookie = in.get(JAVA_LONG, FuseAbi.READ_OFFSET);
        long size = Math.min(Integer.toUnsignedLong(in.get(JAVA_INT, FuseAbi.READ_SIZE)), Reply.PAYLOAD_CAPACITY);
        MemorySegment p = out.payload();
        long at = 0;
        int batchSize = (int) Math.max(16, size / 32);
        fill:
        while (true) {
            List<DirEntry> batch = vfs.readdir(r.nodeid(), cookie, batchSize);
            for (DirEntry e : batch) {
                int n = FuseStructs.putDirent(p, at, size, e.ino(), e.nextCookie(), e.type(), e.name());
                if (n == 0) {
                    break fill;
                }
                at += n;
                cookie = e.nextCookie();
            }
            if (batch.size() < batchSize) {
                break;
            }
        }
        out.send((int) at);
    }

    // ---- extended attributes -------------------------------------------------------------------

    /** SETXATTR without FUSE_SETXATTR_EXT: fuse_setxattr_in is {size, flags}, then name, NUL, value. */
    private void setxattr(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.SETXATTR_IN_COMPAT_BYTES);
        int size = in.get(JAVA_INT, 0);
        int flags = in.get(JAVA_INT, 4);
        byte[] name = FuseRequest.string(in, FuseAbi.SETXATTR_IN_COMPAT_BYTES);
        long valueAt = FuseAbi.SETXATTR_IN_COMPAT_BYTES + name.length + 1L;
        if (size < 0 || valueAt + size > in.byteSize()) {
            throw errno(Errno.EINVAL, "setxattr");
        }
        byte[] value = in.asSlice(valueAt, size).toArray(JAVA_BYTE);
        vfs.setxattr(r.nodeid(), name, value, flags);
        out.ok();
    }

    /** GETXATTR: size 0 asks for the length (fuse_getxattr_out); a smaller buffer than the value is ERANGE. */
    private void getxattr(FuseRequest r, Reply out) throws IOException {
        MemorySegment in = r.body(FuseAbi.GETXATTR_IN_BYTES);
        long size = Integer.toUnsignedLong(in.get(JAVA_INT, 0));
        byte[] v = vfs.getxattr(r.nodeid(), FuseRequest.string(in, FuseAbi.GETXATTR_IN_BYTES));
        sized(out, size, v);
    }

    private void listxattr(FuseRequest r, Reply out) throws IOException {
        long size = Integer.toUnsignedLong(r.body(FuseAbi.GETXATTR_IN_BYTES).get(JAVA_INT, 0));
        List<byte[]> names = vfs.listxattr(r.nodeid());
        int total = 0;
        for (byte[] n : names) {
            total += n.length + 1;
        }
        byte[] list = new byte[total];
        int at = 0;
        for (byte[] n : names) {
            System.arraycopy(n, 0, list, at, n.length);
            at += n.length + 1; // NUL-separated
        }
        sized(out, size, list);
    }

    private static void sized(Reply out, long size, byte[] v) throws ErrnoException {
        if (size == 0) {
            out.payload().set(JAVA_INT, 0, v.length);
            out.payload().set(JAVA_INT, 4, 0);
            out.send(FuseAbi.GETXATTR_OUT_BYTES);
            return;
        }
        if (size < v.length) {
            throw errno(Errno.ERANGE, "xattr");
        }
        if (v.length > Reply.PAYLOAD_CAPACITY) {
            throw errno(Errno.E2BIG, "xattr");
        }
        bytes(out, v);
    }

    // ---- life cycle ----------------------------------------------------------------------------

    /**
     * Releases every handle the kernel never released (the connection went away with files
     * open, or DESTROY came first). Called once, after the last request.
     */
    void releaseAll() {
        for (Long fh : List.copyOf(files.keySet())) {
            OpenFile f = files.remove(fh);
            OpenFile c = companions.remove(fh);
            for (OpenFile o : new OpenFile[] {c, f}) {
                if (o == null) {
                    continue;
                }
                try {
                    vfs.release(o);
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, "release at unmount failed: " + e, e);
                }
            }
        }
    }
}
