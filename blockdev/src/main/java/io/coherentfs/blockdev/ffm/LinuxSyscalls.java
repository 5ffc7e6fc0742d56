package io.coherentfs.blockdev.ffm;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.List;

/**
 * Every downcall coherentfs makes into the C library, and nothing else. Each handle captures
 * errno through {@link Linker.Option#captureCallState}; a failing call becomes an
 * {@link ErrnoException} naming the call. Variadic functions (open, ioctl, fcntl, syscall) are
 * declared with {@link Linker.Option#firstVariadicArg} so their arguments are passed the way the
 * C ABI passes variadic ones.
 *
 * <p>Thread safety: all methods may be called from any thread. The errno capture buffer is one
 * per thread, and GC-managed ({@link Arena#ofAuto()}), so short-lived threads leak nothing; so is
 * the scratch struct iovec array that the synchronous preadv/pwritev build their request in.
 *
 * <p>Constants are Linux x86-64/arm64 generic values.
 */
public final class LinuxSyscalls {
    // open(2) flags.
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int O_TRUNC = 0x200;
    public static final int O_APPEND = 0x400;
    public static final int O_DSYNC = 0x1000;
    public static final int O_DIRECT = 0x4000;
    public static final int O_DIRECTORY = 0x10000;
    public static final int O_CLOEXEC = 0x80000;

    // fcntl(2), flock(2), fallocate(2), mmap(2).
    public static final int F_GETFL = 3;
    public static final int LOCK_EX = 2;
    public static final int LOCK_NB = 4;
    public static final int LOCK_UN = 8;
    public static final int FALLOC_FL_KEEP_SIZE = 1;
    public static final int FALLOC_FL_PUNCH_HOLE = 2;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    public static final int MS_ASYNC = 1;
    public static final int MS_INVALIDATE = 2;
    public static final int MS_SYNC = 4;
    public static final long MS_RDONLY = 1;
    public static final long MS_NOSUID = 2;
    public static final long MS_NODEV = 4;
    public static final long MS_NOEXEC = 8;
    public static final long MS_SYNCHRONOUS = 16;
    public static final long MS_REMOUNT = 32;
    public static final long MS_DIRSYNC = 128;
    public static final long MS_NOATIME = 1024;
    public static final long MS_RELATIME = 1L << 21;
    public static final long MS_STRICTATIME = 1L << 24;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    public static final int MAP_POPULATE = 0x8000;
    public static final int MAP_PRIVATE = 2;
    public static final int MAP_ANONYMOUS = 0x20;
    /** madvise(2): back the range with transparent huge pages where possible. */
    public static final int MADV_HUGEPAGE = 14;

    // Block device ioctls (linux/fs.h).
    public static final long BLKSSZGET = 0x1268L;
    public static final long BLKDISCARD = 0x1277L;
    public static final long BLKPBSZGET = 0x127bL;
    public static final long BLKGETSIZE64 = 0x80081272L;

    // statx(2).
    private static final int AT_EMPTY_PATH = 0x1000;
    public static final int STATX_TYPE = 0x1;
    public static final int STATX_MODE = 0x2;
    public static final int STATX_SIZE = 0x200;
    public static final int STATX_DIOALIGN = 0x2000;
    public static final int S_IFMT = 0xF000;
    public static final int S_IFREG = 0x8000;
    public static final int S_IFBLK = 0x6000;

    // struct iovec { void *iov_base; size_t iov_len; } (LP64), and the kernel's most per call.
    public static final long IOVEC_BYTES = 16;
    public static final int IOV_MAX = 1024;

    // syscall(2) numbers (x86-64).
    public static final long SYS_IO_URING_SETUP = 425;
    public static final long SYS_IO_URING_ENTER = 426;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));
    /** Per thread: the iovec array of the thread's synchronous preadv/pwritev, grown on demand. */
    private static final ThreadLocal<MemorySegment[]> IOV_SCRATCH = ThreadLocal.withInitial(() -> new MemorySegment[1]);

    private static final MethodHandle OPEN = downcall("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle PREAD = downcall("pread64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PWRITE = downcall("pwrite64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PREADV = downcall("preadv64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle PWRITEV = downcall("pwritev64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FSYNC = downcall("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FDATASYNC = downcall("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle STATX = downcall("statx",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle IOCTL = downcall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle FCNTL = downcall("fcntl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle FALLOCATE = downcall("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FLOCK = downcall("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle DUP2 = downcall("dup2", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle FTRUNCATE = downcall("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MMAP = downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = downcall("munmap",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle MADVISE = downcall("madvise",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MSYNC = downcall("msync",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MOUNT = downcall("mount",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
    private static final MethodHandle READ = downcall("read",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITEV = downcall("writev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle GETUID = downcall("getuid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETGID = downcall("getgid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle SYSCALL = downcall("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1));

    /** statx(2)'s answer, as far as coherentfs reads it. Alignments are 0 where the kernel gave none. */
    public record Statx(int mask, int mode, long size, int blockSize, int dioMemAlign, int dioOffsetAlign) {
        public boolean isRegularFile() {
            return (mode & S_IFMT) == S_IFREG;
        }

        public boolean isBlockDevice() {
            return (mode & S_IFMT) == S_IFBLK;
        }

        public boolean hasDioAlign() {
            return (mask & STATX_DIOALIGN) != 0 && dioOffsetAlign != 0;
        }
    }

    private LinuxSyscalls() {}

    private static MethodHandle downcall(String name, FunctionDescriptor fd, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = CAPTURE_ERRNO;
        System.arraycopy(extra, 0, options, 1, extra.length);
        MemorySegment symbol = LIBC.find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("C library has no symbol " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    private static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    /** One downcall through a handle that captures errno into {@code capture}. */
    @FunctionalInterface
    private interface Downcall {
        long invoke(MemorySegment capture) throws Throwable;
    }

    /** Says what the failing call was working on; evaluated only on failure. */
    @FunctionalInterface
    private interface Detail {
        String describe();
    }

    /**
     * Runs {@code call}; a result of -1 (every libc wrapper's failure value) becomes the errno's
     * typed exception. EINTR repeats the call when {@code retryOnEintr}.
     */
    private static long checked(String name, boolean retryOnEintr, Detail detail, Downcall call) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        while (true) {
            long result;
            try {
                result = call.invoke(capture);
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException("downcall " + name + " failed", t);
            }
            if (result != -1L) {
                return result;
            }
            int err = errno(capture);
            if (!(retryOnEintr && err == Errno.EINTR.code())) {
                throw ErrnoException.of(err, name, detail == null ? null : detail.describe());
            }
        }
    }

    public static int open(String path, int flags, int mode) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cPath = arena.allocateFrom(path);
            return (int) checked("open", true, () -> path, c -> (int) OPEN.invokeExact(c, cPath, flags, mode));
        }
    }

    public static void close(int fd) throws ErrnoException {
        // Never retry close on EINTR: on Linux the descriptor is already released.
        checked("close", false, () -> "fd " + fd, c -> (int) CLOSE.invokeExact(c, fd));
    }

    /** One pread(2); returns the byte count, which may be short (0 at end of file). */
    public static long pread(int fd, MemorySegment buf, long offset) throws ErrnoException {
        return checked("pread", true, () -> rwDetail(fd, buf, offset),
                c -> (long) PREAD.invokeExact(c, fd, buf, buf.byteSize(), offset));
    }

    /** One pwrite(2); returns the byte count, which may be short. */
    public static long pwrite(int fd, MemorySegment buf, long offset) throws ErrnoException {
        return checked("pwrite", true, () -> rwDetail(fd, buf, offset),
                c -> (long) PWRITE.invokeExact(c, fd, buf, buf.byteSize(), offset));
    }

    private static String rwDetail(int fd, MemorySegment buf, long offset) {
        return "fd " + fd + ", offset " + offset + ", length " + buf.byteSize();
    }

    /**
     * One preadv(2) into {@code bufs} laid end to end, less their first {@code skip} bytes (the
     * part an earlier short call already moved); returns the byte count, which may be short. The
     * iovec array is built in this thread's scratch memory.
     *
     * <p>The buffers reach the kernel as raw addresses: unlike a segment passed to a downcall,
     * their arenas are not held open during the call, so the caller must keep them alive.
     */
    public static long preadv(int fd, List<MemorySegment> bufs, long skip, long offset) throws ErrnoException {
        MemorySegment iov = iovScratch("preadv", bufs.size());
        int count = putIovecs(iov, bufs, skip);
        return checked("preadv", true, () -> rwvDetail(fd, bufs, skip, offset),
                c -> (long) PREADV.invokeExact(c, fd, iov, count, offset));
    }

    /** One pwritev(2); see {@link #preadv(int, List, long, long)}. */
    public static long pwritev(int fd, List<MemorySegment> bufs, long skip, long offset) throws ErrnoException {
        MemorySegment iov = iovScratch("pwritev", bufs.size());
        int count = putIovecs(iov, bufs, skip);
        return checked("pwritev", true, () -> rwvDetail(fd, bufs, skip, offset),
                c -> (long) PWRITEV.invokeExact(c, fd, iov, count, offset));
    }

    /**
     * Fills {@code iov} with one struct iovec per buffer of {@code bufs}, less the first
     * {@code skip} bytes (buffers wholly inside them are left out, the one the skip ends in
     * starts later). Returns the number of iovecs; {@code iov} must hold that many
     * ({@link #IOVEC_BYTES} each) and be 8-byte aligned.
     */
    public static int putIovecs(MemorySegment iov, List<MemorySegment> bufs, long skip) {
        int count = 0;
        long left = skip;
        for (MemorySegment buf : bufs) {
            if (!buf.isNative()) {
                throw new IllegalArgumentException("an iovec needs native memory, not a heap segment");
            }
            long length = buf.byteSize();
            if (left >= length) {
                left -= length;
                continue;
            }
            long at = count * IOVEC_BYTES;
            iov.set(JAVA_LONG, at, buf.address() + left);
            iov.set(JAVA_LONG, at + 8, length - left);
            left = 0;
            count++;
        }
        return count;
    }

    private static MemorySegment iovScratch(String call, int count) throws ErrnoException {
        if (count < 1 || count > IOV_MAX) {
            // What the kernel would answer; refused here so the scratch array stays bounded.
            throw new ErrnoException.InvalidArgumentException(call, count + " iovecs, 1 to " + IOV_MAX + " allowed");
        }
        MemorySegment[] holder = IOV_SCRATCH.get();
        long need = count * IOVEC_BYTES;
        if (holder[0] == null || holder[0].byteSize() < need) {
            long size = Math.max(8, Integer.highestOneBit(count - 1) << 1) * IOVEC_BYTES;
            holder[0] = Arena.ofAuto().allocate(size, 8);
        }
        return holder[0];
    }

    private static String rwvDetail(int fd, List<MemorySegment> bufs, long skip, long offset) {
        long length = -skip;
        for (MemorySegment b : bufs) {
            length += b.byteSize();
        }
        return "fd " + fd + ", offset " + offset + ", " + bufs.size() + " segments, length " + length;
    }

    public static void fsync(int fd) throws ErrnoException {
        checked("fsync", true, () -> "fd " + fd, c -> (int) FSYNC.invokeExact(c, fd));
    }

    public static void fdatasync(int fd) throws ErrnoException {
        checked("fdatasync", true, () -> "fd " + fd, c -> (int) FDATASYNC.invokeExact(c, fd));
    }

    /** statx(2) on an open descriptor, asking for type, mode, size and the direct-IO alignment. */
    public static Statx statx(int fd) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(256, 8);
            MemorySegment empty = arena.allocateFrom("");
            int mask = STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_DIOALIGN;
            checked("statx", true, () -> "fd " + fd,
                    c -> (int) STATX.invokeExact(c, fd, empty, AT_EMPTY_PATH, mask, buf));
            // struct statx offsets: stx_mask 0, stx_blksize 4, stx_mode 28 (u16), stx_size 40,
            // stx_dio_mem_align 152, stx_dio_offset_align 156.
            return new Statx(
                    buf.get(JAVA_INT, 0),
                    Short.toUnsignedInt(buf.get(JAVA_SHORT, 28)),
                    buf.get(JAVA_LONG, 40),
                    buf.get(JAVA_INT, 4),
                    buf.get(JAVA_INT, 152),
                    buf.get(JAVA_INT, 156));
        }
    }

    /** An ioctl whose argument points at a u64 the kernel fills (BLKGETSIZE64). */
    public static long ioctlReadLong(int fd, long request, String name) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            ioctl(fd, request, out, name);
            return out.get(JAVA_LONG, 0);
        }
    }

    /** An ioctl whose argument points at an int the kernel fills (BLKSSZGET, BLKPBSZGET). */
    public static int ioctlReadInt(int fd, long request, String name) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            ioctl(fd, request, out, name);
            return out.get(JAVA_INT, 0);
        }
    }

    /** BLKDISCARD: the argument is u64[2] = {offset, length}. */
    public static void blkDiscard(int fd, long offset, long length) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment range = arena.allocate(JAVA_LONG, 2);
            range.setAtIndex(JAVA_LONG, 0, offset);
            range.setAtIndex(JAVA_LONG, 1, length);
            ioctl(fd, BLKDISCARD, range, "BLKDISCARD");
        }
    }

    private static void ioctl(int fd, long request, MemorySegment arg, String name) throws ErrnoException {
        checked("ioctl(" + name + ")", true, () -> "fd " + fd, c -> (int) IOCTL.invokeExact(c, fd, request, arg));
    }

    public static int fcntlGetFlags(int fd) throws ErrnoException {
        return (int) checked("fcntl(F_GETFL)", true, () -> "fd " + fd, c -> (int) FCNTL.invokeExact(c, fd, F_GETFL, 0));
    }

    public static void fallocate(int fd, int mode, long offset, long length) throws ErrnoException {
        checked("fallocate", true, () -> "fd " + fd + ", mode " + mode + ", offset " + offset + ", length " + length,
                c -> (int) FALLOCATE.invokeExact(c, fd, mode, offset, length));
    }

    public static void ftruncate(int fd, long length) throws ErrnoException {
        checked("ftruncate", true, () -> "fd " + fd + ", length " + length,
                c -> (int) FTRUNCATE.invokeExact(c, fd, length));
    }

    /** flock(2); with LOCK_NB a held lock fails with EWOULDBLOCK (EAGAIN). */
    public static void flock(int fd, int operation) throws ErrnoException {
        checked("flock", true, () -> "fd " + fd, c -> (int) FLOCK.invokeExact(c, fd, operation));
    }

    /** msync(2) of {@code length} bytes from the start of {@code mapping} (page-aligned). */
    /** dup2(2): makes {@code newFd} refer to what {@code oldFd} refers to (closing it first). */
    public static void dup2(int oldFd, int newFd) throws ErrnoException {
        checked("dup2", true, () -> "fd " + oldFd + " onto " + newFd, c -> (int) DUP2.invokeExact(c, oldFd, newFd));
    }

    public static void msync(MemorySegment mapping, long length, int flags) throws ErrnoException {
        checked("msync", true, () -> "length " + length + ", flags " + flags,
                c -> (int) MSYNC.invokeExact(c, mapping, length, flags));
    }

    /**
     * mount(2) with {@code MS_REMOUNT} of the mount at {@code target}: {@code flags} are the
     * MS_* flags it should have afterwards (MS_RDONLY, MS_NOSUID, ...). The options string is
     * empty: FUSE, the only filesystem we remount, takes no options on reconfiguration.
     */
    public static void remount(String target, long flags) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment t = arena.allocateFrom(target);
            MemorySegment data = arena.allocateFrom("");
            checked("mount", true, () -> "remount of " + target + ", flags 0x" + Long.toHexString(flags),
                    c -> (int) MOUNT.invokeExact(c, MemorySegment.NULL, t, MemorySegment.NULL, flags | MS_REMOUNT, data));
        }
    }

    /**
     * mount(2) of a new filesystem: {@code data} is the filesystem's option string (for FUSE
     * "fd=N,rootmode=...,user_id=...,group_id=..."), {@code flags} the MS_* flags.
     */
    public static void mount(String source, String target, String type, long flags, String data)
            throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocateFrom(source);
            MemorySegment t = arena.allocateFrom(target);
            MemorySegment ty = arena.allocateFrom(type);
            MemorySegment d = arena.allocateFrom(data);
            checked("mount", true, () -> type + " " + source + " on " + target + ", flags 0x" + Long.toHexString(flags),
                    c -> (int) MOUNT.invokeExact(c, s, t, ty, flags, d));
        }
    }

    /**
     * One read(2) of up to {@code buf.byteSize()} bytes; returns the count. EINTR is repeated;
     * every other failure (EAGAIN, ENODEV, ...) is the caller's to interpret.
     */
    public static long read(int fd, MemorySegment buf) throws ErrnoException {
        return checked("read", true, () -> "fd " + fd + ", length " + buf.byteSize(),
                c -> (long) READ.invokeExact(c, fd, buf, buf.byteSize()));
    }

    /**
     * One writev(2) of {@code count} struct iovecs already filled in {@code iov} (see
     * {@link #putIovecs}); returns the byte count. Not repeated on EINTR: a device such as
     * /dev/fuse takes a message whole or not at all, and the caller decides.
     */
    public static long writev(int fd, MemorySegment iov, int count) throws ErrnoException {
        return checked("writev", false, () -> "fd " + fd + ", " + count + " iovecs",
                c -> (long) WRITEV.invokeExact(c, fd, iov, count));
    }

    /** getuid(2): the real user id of this process (cannot fail). */
    public static int getuid() {
        try {
            return (int) GETUID.invokeExact(CAPTURE.get());
        } catch (Throwable t) {
            throw new IllegalStateException("getuid failed", t);
        }
    }

    /** getgid(2): the real group id of this process (cannot fail). */
    public static int getgid() {
        try {
            return (int) GETGID.invokeExact(CAPTURE.get());
        } catch (Throwable t) {
            throw new IllegalStateException("getgid failed", t);
        }
    }

    /** mmap(2) of {@code length} bytes of {@code fd}; the segment is sized to the mapping. */
    public static MemorySegment mmap(long length, int prot, int flags, int fd, long offset) throws ErrnoException {
        long address = checked("mmap", false, () -> "fd " + fd + ", length " + length + ", offset " + offset,
                c -> ((MemorySegment) MMAP.invokeExact(c, MemorySegment.NULL, length, prot, flags, fd, offset)).address());
        return MemorySegment.ofAddress(address).reinterpret(length);
    }

    public static void madvise(MemorySegment range, int advice) throws ErrnoException {
        checked("madvise", false, () -> "advice " + advice + ", length " + range.byteSize(),
                c -> (int) MADVISE.invokeExact(c, range, range.byteSize(), advice));
    }

    public static void munmap(MemorySegment mapping) throws ErrnoException {
        checked("munmap", false, () -> "length " + mapping.byteSize(),
                c -> (int) MUNMAP.invokeExact(c, mapping, mapping.byteSize()));
    }

    /**
     * syscall(2) with six arguments (unused ones 0). Returns the result, or throws with the errno
     * when the C wrapper returned -1. EINTR is returned to the caller as an exception: only the
     * caller knows whether repeating the call is right.
     */
    public static long syscall(String name, long number, long a1, long a2, long a3, long a4, long a5, long a6)
            throws ErrnoException {
        return checked(name, false, null, c -> (long) SYSCALL.invokeExact(c, number, a1, a2, a3, a4, a5, a6));
    }
}
