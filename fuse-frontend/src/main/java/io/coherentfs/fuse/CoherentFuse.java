package io.coherentfs.fuse;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.DirEntry;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import io.coherentfs.core.vfs.StatFs;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.fuse.FuseMetrics.Op;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Level;
import java.util.logging.Logger;
import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseContext;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.Statvfs;

/**
 * The FUSE adapter: libfuse 2's high-level (path) operations, through jnr-fuse, onto the
 * inode-based {@link Vfs}. One handler per operation; each resolves its path
 * ({@link PathResolver}), makes one Vfs call, and answers 0, a count, or {@code -errno}
 * ({@link ErrnoException#errno()} exactly; anything else is EIO and logged).
 *
 * <h2>Features decided once, at mount ({@link #fuseArguments})</h2>
 * <ul>
 * <li>{@code use_ino}: st_ino and readdir's d_ino are the engine's inode numbers;
 * <li>the {@code nullpath_ok} and {@code nopath} flags: libfuse never computes paths for
 *     operations on open files (read, write, fsync, flush, release, fgetattr, ftruncate,
 *     fallocate, readdir) — they go by file handle, and the hot IO path does no path work;
 * <li>no {@code hard_remove}: an open file that is unlinked or renamed over is renamed to
 *     {@code .fuse_hiddenNNN} by libfuse and unlinked at its last close. The kernel's
 *     stat(2)/fstat(2) of a FUSE file never carries the file handle, so libfuse must be able
 *     to compute a path for it; with {@code hard_remove} fstat of an unlinked open file fails
 *     with ENOENT. The price: the hidden name is visible in its directory while the file is
 *     open;
 * <li>{@code utime_omit_ok}: UTIME_NOW and UTIME_OMIT reach {@link #utimens} as they are;
 * <li>{@code big_writes,max_write=131072}: buffered writes arrive in 128 KiB requests;
 * <li>{@code default_permissions}: the kernel checks mode bits, as for a disk filesystem.
 * </ul>
 * jnr-fuse maps none of the three flags (its struct has them as padding), so
 * {@link #setOperationFlags} writes the C bitfield word that follows {@code bmap}.
 *
 * <h2>Open files and the kernel's page cache</h2>
 * {@link #open} chooses per handle, by writing {@code fuse_file_info}'s bitfield at byte 20
 * (libfuse 2.9 fuse_common.h, x86-64: {@code direct_io} bit 0, {@code keep_cache} bit 1): an
 * {@code O_DIRECT} open gets {@code direct_io} (every read and write reaches the engine's
 * direct path, nothing is cached by the kernel); a buffered open gets {@code keep_cache}, see
 * README "The kernel's page cache" for why that is coherent.
 *
 * <p>Thread-safe: libfuse's multithreaded loop calls any handler from any of its threads; the
 * state here is the Vfs (thread-safe), the open-file table and the resolver's cache.
 */
public final class CoherentFuse extends FuseStubFS {
    private static final Logger LOG = Logger.getLogger(CoherentFuse.class.getName());

    static final int O_DIRECT = OpenFile.O_DIRECT;
    static final int O_EXCL = 0x80;
    static final int S_IFMT = 0xF000;
    static final int S_IFREG = 0x8000;
    static final int S_IFDIR = 0x4000;
    static final long UTIME_NOW = (1L << 30) - 1;
    static final long UTIME_OMIT = (1L << 30) - 2;

    /** fuse_file_info offsets (libfuse 2.9, x86-64): int flags @0, bitfield @20, uint64 fh @24. */
    static final long FI_FLAGS = 0;
    static final long FI_BITS = 20;
    static final long FI_FH = 24;
    static final int FI_DIRECT_IO = 1;
    static final int FI_KEEP_CACHE = 1 << 1;

    /** fuse_operations (libfuse 2.9, x86-64): 38 function pointers, then the flag word. */
    static final long OPS_FLAGS = 38 * 8;
    static final int FLAG_NULLPATH_OK = 1;
    static final int FLAG_NOPATH = 1 << 1;
    static final int FLAG_UTIME_OMIT_OK = 1 << 2;

    private final Vfs vfs;
    private final PathResolver paths;
    private final FuseMetrics metrics;
    private final ConcurrentHashMap<Long, OpenFile> files = new ConcurrentHashMap<>();
    private final boolean keepCache;

    /**
     * @param keepCache whether buffered opens keep the kernel's cached pages (README explains);
     *     false makes every buffered open drop them, as libfuse's default does
     */
    public CoherentFuse(Vfs vfs, MeterRegistry registry, boolean keepCache) {
        this.vfs = vfs;
        this.paths = new PathResolver(vfs, 200_000);
        this.metrics = new FuseMetrics(registry, files::size);
        this.keepCache = keepCache;
        setOperationFlags();
    }

    private void setOperationFlags() {
        Pointer ops = Struct.getMemory(fuseOperations);
        ops.putInt(OPS_FLAGS, FLAG_NULLPATH_OK | FLAG_NOPATH | FLAG_UTIME_OMIT_OK);
    }

    /**
     * Runs libfuse's multithreaded loop on {@code mountpoint} until it is unmounted; returns
     * libfuse's status (0 after a clean unmount, 1 when the mount failed — libfuse said why on
     * stderr).
     */
    public int run(String mountpoint, List<String> options, boolean debug) {
        String[] args = fuseArguments(mountpoint, options, debug);
        LOG.info("libfuse arguments: " + String.join(" ", args));
        return libFuse.fuse_main_real(args.length, args, fuseOperations, Struct.size(fuseOperations), null);
    }

    static String[] fuseArguments(String mountpoint, List<String> options, boolean debug) {
        List<String> args = new java.util.ArrayList<>(List.of("coherentfs", "-f"));
        if (debug) {
            args.add("-d");
        }
        args.add(mountpoint);
        args.add("-o");
        args.add(String.join(",", options));
        return args.toArray(String[]::new);
    }

    // ---- plumbing ------------------------------------------------------------------------------

    @FunctionalInterface
    private interface Handler {
        int run() throws IOException;
    }

    private int call(Op op, Handler h) {
        long t = metrics.start();
        try {
            return h.run();
        } catch (IOException | RuntimeException | Error e) {
            return -metrics.failed(op, e, LOG);
        } finally {
            metrics.done(op, t);
        }
    }

    private static ErrnoException errno(Errno e, String call) {
        return ErrnoException.of(e.code(), call, null);
    }

    private OpenFile file(FuseFileInfo fi) throws ErrnoException {
        OpenFile f = files.get(Struct.getMemory(fi).getLong(FI_FH));
        if (f == null) {
            throw errno(Errno.EBADF, "fh");
        }
        return f;
    }

    private static int flags(FuseFileInfo fi) {
        return Struct.getMemory(fi).getInt(FI_FLAGS);
    }

    private Caller caller() {
        FuseContext c = getContext();
        return new Caller((int) c.uid.get(), (int) c.gid.get());
    }

    private static MemorySegment segment(Pointer p, long size) {
        return MemorySegment.ofAddress(p.address()).reinterpret(size);
    }

    /**
     * libfuse hands us its request buffer, where write data sits after the request headers (not
     * sector aligned). The engine's direct IO serves aligned memory only, as the kernel does; the
     * application's alignment was checked by the kernel already, so a misaligned buffer here is
     * ours to fix: direct requests go through a per-thread, page-aligned scratch buffer.
     */
    private static boolean alignedForDirect(MemorySegment m) {
        return m.address() % 4096 == 0;
    }

    private static final int SCRATCH_BYTES = 1 << 20;
    private static final ThreadLocal<MemorySegment> SCRATCH = ThreadLocal.withInitial(
            () -> java.lang.foreign.Arena.ofAuto().allocate(SCRATCH_BYTES, 4096));

    private static MemorySegment directScratch(long size) throws ErrnoException {
        if (size > SCRATCH_BYTES) {
            throw new ErrnoException(Errno.EINVAL, "io", "request of " + size + " bytes exceeds " + SCRATCH_BYTES);
        }
        return SCRATCH.get().asSlice(0, size);
    }

    private static void fill(FileStat st, Attr a) {
        st.st_ino.set(a.ino());
        st.st_mode.set(a.mode());
        st.st_nlink.set(a.nlink());
        st.st_uid.set(a.uid());
        st.st_gid.set(a.gid());
        st.st_rdev.set(a.rdev());
        st.st_size.set(a.size());
        st.st_blksize.set(Attr.BLOCK_SIZE);
        st.st_blocks.set(a.blocks());
        st.st_atim.tv_sec.set(a.atime().seconds());
        st.st_atim.tv_nsec.set(a.atime().nanos());
        st.st_mtim.tv_sec.set(a.mtime().seconds());
        st.st_mtim.tv_nsec.set(a.mtime().nanos());
        st.st_ctim.tv_sec.set(a.ctime().seconds());
        st.st_ctim.tv_nsec.set(a.ctime().nanos());
    }

    // ---- attributes ----------------------------------------------------------------------------

    @Override
    public int getattr(String path, FileStat stat) {
        return call(Op.GETATTR, () -> {
            fill(stat, vfs.getattr(paths.resolve(path)));
            return 0;
        });
    }

    @Override
    public int fgetattr(String path, FileStat stat, FuseFileInfo fi) {
        return call(Op.FGETATTR, () -> {
            fill(stat, vfs.getattr(file(fi).ino()));
            return 0;
        });
    }

    @Override
    public int chmod(String path, long mode) {
        return call(Op.CHMOD, () -> {
            vfs.setattr(paths.resolve(path), SetAttr.mode((int) mode & 07777));
            return 0;
        });
    }

    @Override
    public int chown(String path, long uid, long gid) {
        return call(Op.CHOWN, () -> {
            Integer u = (uid == -1 || uid == 0xFFFF_FFFFL) ? null : (int) uid;
            Integer g = (gid == -1 || gid == 0xFFFF_FFFFL) ? null : (int) gid;
            vfs.setattr(paths.resolve(path), SetAttr.owner(u, g));
            return 0;
        });
    }

    @Override
    public int truncate(String path, long size) {
        return call(Op.TRUNCATE, () -> {
            vfs.setattr(paths.resolve(path), SetAttr.size(size));
            return 0;
        });
    }

    @Override
    public int ftruncate(String path, long size, FuseFileInfo fi) {
        return call(Op.FTRUNCATE, () -> {
            vfs.setattr(file(fi).ino(), SetAttr.size(size));
            return 0;
        });
    }

    @Override
    public int utimens(String path, ru.serce.jnrfuse.struct.Timespec[] timespec) {
        return call(Op.UTIMENS, () -> {
            long an = timespec[0].tv_nsec.longValue();
            long mn = timespec[1].tv_nsec.longValue();
            Timespec at = an == UTIME_OMIT || an == UTIME_NOW ? null
                    : new Timespec(timespec[0].tv_sec.get(), (int) an);
            Timespec mt = mn == UTIME_OMIT || mn == UTIME_NOW ? null
                    : new Timespec(timespec[1].tv_sec.get(), (int) mn);
            vfs.setattr(paths.resolve(path), new SetAttr(null, null, null, null, at, an == UTIME_NOW, mt,
                    mn == UTIME_NOW));
            return 0;
        });
    }

    @Override
    public int access(String path, int mask) {
        // default_permissions: the kernel has checked the mode bits; only existence is ours to say.
        return call(Op.ACCESS, () -> {
            paths.resolve(path);
            return 0;
        });
    }

    @Override
    public int statfs(String path, Statvfs st) {
        return call(Op.STATFS, () -> {
            StatFs s = vfs.statfs();
            st.f_bsize.set(s.blockSize());
            st.f_frsize.set(s.blockSize());
            st.f_blocks.set(s.totalBlocks());
            st.f_bfree.set(s.freeBlocks());
            st.f_bavail.set(s.availableBlocks());
            st.f_files.set(s.totalInodes());
            st.f_ffree.set(s.freeInodes());
            st.f_favail.set(s.freeInodes());
            st.f_namemax.set(s.nameMax());
            return 0;
        });
    }

    // ---- namespace -----------------------------------------------------------------------------

    @Override
    public int mknod(String path, long mode, long rdev) {
        return call(Op.MKNOD, () -> {
            PathResolver.Split s = PathResolver.split(path);
            long parent = paths.resolve(s.parent());
            paths.created(parent, s.name(), vfs.mknod(parent, PathResolver.bytes(s.name()), (int) mode, rdev, caller()));
            return 0;
        });
    }

    @Override
    public int mkdir(String path, long mode) {
        return call(Op.MKDIR, () -> {
            PathResolver.Split s = PathResolver.split(path);
            long parent = paths.resolve(s.parent());
            paths.created(parent, s.name(), vfs.mkdir(parent, PathResolver.bytes(s.name()), (int) mode & 07777, caller()));
            return 0;
        });
    }

    @Override
    public int symlink(String target, String linkPath) {
        return call(Op.SYMLINK, () -> {
            PathResolver.Split s = PathResolver.split(linkPath);
            long parent = paths.resolve(s.parent());
            paths.created(parent, s.name(), vfs.symlink(parent, PathResolver.bytes(s.name()),
                    target.getBytes(StandardCharsets.UTF_8), caller()));
            return 0;
        });
    }

    @Override
    public int readlink(String path, Pointer buf, long size) {
        return call(Op.READLINK, () -> {
            byte[] target = vfs.readlink(paths.resolve(path));
            if (size <= 0) {
                return 0;
            }
            int n = (int) Math.min(target.length, size - 1);
            buf.put(0, target, 0, n);
            buf.putByte(n, (byte) 0);
            return 0;
        });
    }

    @Override
    public int link(String existing, String newPath) {
        return call(Op.LINK, () -> {
            long ino = paths.resolve(existing);
            PathResolver.Split s = PathResolver.split(newPath);
            long parent = paths.resolve(s.parent());
            paths.created(parent, s.name(), vfs.link(ino, parent, PathResolver.bytes(s.name())));
            return 0;
        });
    }

    @Override
    public int unlink(String path) {
        return call(Op.UNLINK, () -> {
            PathResolver.Split s = PathResolver.split(path);
            long parent = paths.resolve(s.parent());
            paths.namespace.writeLock().lock();
            try {
                vfs.unlink(parent, PathResolver.bytes(s.name()));
                paths.invalidate(parent, s.name());
            } finally {
                paths.namespace.writeLock().unlock();
            }
            return 0;
        });
    }

    @Override
    public int rmdir(String path) {
        return call(Op.RMDIR, () -> {
            PathResolver.Split s = PathResolver.split(path);
            long parent = paths.resolve(s.parent());
            paths.namespace.writeLock().lock();
            try {
                vfs.rmdir(parent, PathResolver.bytes(s.name()));
                paths.invalidate(parent, s.name());
            } finally {
                paths.namespace.writeLock().unlock();
            }
            return 0;
        });
    }

    @Override
    public int rename(String from, String to) {
        return call(Op.RENAME, () -> {
            PathResolver.Split a = PathResolver.split(from);
            PathResolver.Split b = PathResolver.split(to);
            long pa = paths.resolve(a.parent());
            long pb = paths.resolve(b.parent());
            paths.namespace.writeLock().lock();
            try {
                try {
                    vfs.rename(pa, PathResolver.bytes(a.name()), pb, PathResolver.bytes(b.name()), 0);
                } finally {
                    // even a failed rename may have half-happened if the journal aborted
                    paths.invalidate(pa, a.name());
                    paths.invalidate(pb, b.name());
                }
            } finally {
                paths.namespace.writeLock().unlock();
            }
            return 0;
        });
    }

    // ---- files ---------------------------------------------------------------------------------

    @Override
    public int open(String path, FuseFileInfo fi) {
        return call(Op.OPEN, () -> {
            long ino = paths.resolve(path);
            OpenFile f = vfs.open(ino, flags(fi));
            opened(fi, f, vfs.getattr(ino).nlink() <= 1);
            return 0;
        });
    }

    @Override
    public int create(String path, long mode, FuseFileInfo fi) {
        return call(Op.CREATE, () -> {
            PathResolver.Split s = PathResolver.split(path);
            long parent = paths.resolve(s.parent());
            int flags = flags(fi);
            long ino;
            try {
                Attr a = vfs.mknod(parent, PathResolver.bytes(s.name()), S_IFREG | ((int) mode & 07777), 0, caller());
                paths.created(parent, s.name(), a);
                ino = a.ino();
            } catch (ErrnoException e) {
                if (e.errno() != Errno.EEXIST.code() || (flags & O_EXCL) != 0) {
                    throw e;
                }
                ino = paths.child(parent, s.name()); // lost a race with another creator: open theirs
            }
            opened(fi, vfs.open(ino, flags), true);
            return 0;
        });
    }

    /**
     * Files the handle and tells the kernel how to cache it. {@code singleName}: libfuse 2's
     * path API gives every name of a hard-linked file its own kernel inode, so pages cached
     * under one name never learn of writes through another; such files drop their cached pages
     * at every open instead of keeping them.
     */
    private void opened(FuseFileInfo fi, OpenFile f, boolean singleName) {
        files.put(f.id(), f);
        Pointer p = Struct.getMemory(fi);
        p.putLong(FI_FH, f.id());
        int bits = p.getInt(FI_BITS) & ~(FI_DIRECT_IO | FI_KEEP_CACHE);
        if ((f.flags() & O_DIRECT) != 0) {
            bits |= FI_DIRECT_IO;
        } else if (keepCache && singleName) {
            bits |= FI_KEEP_CACHE;
        }
        p.putInt(FI_BITS, bits);
    }

    @Override
    public int read(String path, Pointer buf, long size, long offset, FuseFileInfo fi) {
        return call(Op.READ, () -> {
            OpenFile f = file(fi);
            MemorySegment dst = segment(buf, size);
            int n;
            if ((f.flags() & O_DIRECT) != 0 && !alignedForDirect(dst)) {
                MemorySegment scratch = directScratch(size);
                n = vfs.read(f, offset, scratch);
                MemorySegment.copy(scratch, 0, dst, 0, n);
            } else {
                n = vfs.read(f, offset, dst);
            }
            ((f.flags() & O_DIRECT) != 0 ? metrics.readDirect : metrics.readBuffered).record(n);
            return n;
        });
    }

    @Override
    public int write(String path, Pointer buf, long size, long offset, FuseFileInfo fi) {
        return call(Op.WRITE, () -> {
            OpenFile f = file(fi);
            MemorySegment src = segment(buf, size);
            if ((f.flags() & O_DIRECT) != 0 && !alignedForDirect(src)) {
                MemorySegment scratch = directScratch(size);
                MemorySegment.copy(src, 0, scratch, 0, size);
                src = scratch;
            }
            int n = vfs.write(f, offset, src);
            ((f.flags() & O_DIRECT) != 0 ? metrics.writeDirect : metrics.writeBuffered).record(n);
            return n;
        });
    }

    @Override
    public int flush(String path, FuseFileInfo fi) {
        return call(Op.FLUSH, () -> {
            vfs.flush(file(fi)); // close(2) of any open descriptor, write-only ones included
            return 0;
        });
    }

    @Override
    public int release(String path, FuseFileInfo fi) {
        return call(Op.RELEASE, () -> {
            OpenFile f = files.remove(Struct.getMemory(fi).getLong(FI_FH));
            if (f != null) {
                vfs.release(f);
            }
            return 0;
        });
    }

    @Override
    public int fsync(String path, int isdatasync, FuseFileInfo fi) {
        return call(Op.FSYNC, () -> {
            vfs.fsync(file(fi), isdatasync != 0);
            return 0;
        });
    }

    @Override
    public int fallocate(String path, int mode, long off, long length, FuseFileInfo fi) {
        return call(Op.FALLOCATE, () -> {
            vfs.fallocate(file(fi), mode, off, length);
            return 0;
        });
    }

    // ---- directories ---------------------------------------------------------------------------

    @Override
    public int opendir(String path, FuseFileInfo fi) {
        return call(Op.OPENDIR, () -> {
            long ino = paths.resolve(path);
            if (!vfs.getattr(ino).isDirectory()) {
                throw errno(Errno.ENOTDIR, "opendir");
            }
            Struct.getMemory(fi).putLong(FI_FH, ino);
            return 0;
        });
    }

    @Override
    public int readdir(String path, Pointer buf, FuseFillDir filler, long offset, FuseFileInfo fi) {
        return call(Op.READDIR, () -> {
            long ino = Struct.getMemory(fi).getLong(FI_FH);
            FileStat st = new FileStat(jnr.ffi.Runtime.getSystemRuntime());
            Pointer stp = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), Struct.size(st), true);
            st.useMemory(stp);
            long cookie = offset;
            while (true) {
                List<DirEntry> batch = vfs.readdir(ino, cookie, 256);
                for (DirEntry e : batch) {
                    st.st_ino.set(e.ino());
                    st.st_mode.set(e.type());
                    byte[] name = e.name();
                    ByteBuffer z = ByteBuffer.allocate(name.length + 1).put(name).put((byte) 0).flip();
                    if (filler.apply(buf, z, stp, e.nextCookie()) != 0) {
                        return 0; // the kernel's buffer is full; it asks again from this cookie
                    }
                    cookie = e.nextCookie();
                }
                if (batch.size() < 256) {
                    return 0;
                }
            }
        });
    }

    @Override
    public int releasedir(String path, FuseFileInfo fi) {
        return 0;
    }

    @Override
    public int fsyncdir(String path, FuseFileInfo fi) {
        return call(Op.FSYNCDIR, () -> {
            vfs.sync(); // directory changes are journaled: committing makes them durable
            return 0;
        });
    }

    // ---- extended attributes -------------------------------------------------------------------

    @Override
    public int setxattr(String path, String name, Pointer value, long size, int flags) {
        return call(Op.SETXATTR, () -> {
            byte[] v = new byte[(int) size];
            value.get(0, v, 0, v.length);
            vfs.setxattr(paths.resolve(path), PathResolver.bytes(name), v, flags);
            return 0;
        });
    }

    @Override
    public int getxattr(String path, String name, Pointer value, long size) {
        return call(Op.GETXATTR, () -> {
            byte[] v = vfs.getxattr(paths.resolve(path), PathResolver.bytes(name));
            if (size == 0) {
                return v.length;
            }
            if (size < v.length) {
                throw errno(Errno.ERANGE, "getxattr");
            }
            value.put(0, v, 0, v.length);
            return v.length;
        });
    }

    @Override
    public int listxattr(String path, Pointer list, long size) {
        return call(Op.LISTXATTR, () -> {
            List<byte[]> names = vfs.listxattr(paths.resolve(path));
            int total = 0;
            for (byte[] n : names) {
                total += n.length + 1;
            }
            if (size == 0) {
                return total;
            }
            if (size < total) {
                throw errno(Errno.ERANGE, "listxattr");
            }
            long at = 0;
            for (byte[] n : names) {
                list.put(at, n, 0, n.length);
                list.putByte(at + n.length, (byte) 0);
                at += n.length + 1;
            }
            return total;
        });
    }

    @Override
    public int removexattr(String path, String name) {
        return call(Op.REMOVEXATTR, () -> {
            vfs.removexattr(paths.resolve(path), PathResolver.bytes(name));
            return 0;
        });
    }

    // ---- life cycle ----------------------------------------------------------------------------

    private volatile Runnable onDestroy = () -> { };

    /** Runs {@code r} when libfuse tears the session down (after unmount, before run() returns). */
    public void onDestroy(Runnable r) {
        this.onDestroy = r;
    }

    @Override
    public Pointer init(Pointer conn) {
        LOG.info("FUSE session started");
        return null;
    }

    @Override
    public void destroy(Pointer initResult) {
        LOG.info("FUSE session ended");
        // Release what the kernel never released (a daemon-side unmount drops handles unannounced).
        for (OpenFile f : List.copyOf(files.values())) {
            files.remove(f.id());
            try {
                vfs.release(f);
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.WARNING, "release at unmount failed: " + e, e);
            }
        }
        onDestroy.run();
    }
}
