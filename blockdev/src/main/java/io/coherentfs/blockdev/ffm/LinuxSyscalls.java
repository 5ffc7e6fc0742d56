package io.coherentfs.blockdev.ffm;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

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

/**
 * Every downcall coherentfs makes into the C library, and nothing else. Each handle captures
 * errno through {@link Linker.Option#captureCallState}; a failing call becomes an
 * {@link ErrnoException} naming the call. Variadic functions (open, ioctl, fcntl, syscall) are
 * declared with {@link Linker.Option#firstVariadicArg} so their arguments are passed the way the
 * C ABI passes variadic ones.
 *
 * <p>Thread safety: all methods may be called from any thread. The errno capture buffer is one
 * per thread, and GC-managed ({@link Arena#ofAuto()}), so short-lived threads leak nothing.
 *
 * <p>Constants are Linux x86-64/arm64 generic values.
 */
public final class LinuxSyscalls {
    // open(2) flags.
    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int O_DSYNC = 0x1000;
    public static final int O_DIRECT = 0x4000;
    public static final int O_CLOEXEC = 0x80000;

    // fcntl(2), flock(2), fallocate(2), mmap(2).
    public static final int F_GETFL = 3;
    public static final int LOCK_EX = 2;
    public static final int LOCK_NB = 4;
    public static final int LOCK_UN = 8;
    public static final int FALLOC_FL_KEEP_SIZE = 1;
    public static final int FALLOC_FL_PUNCH_HOLE = 2;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    public static final int MAP_POPULATE = 0x8000;

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

    private static final MethodHandle OPEN = downcall("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle PREAD = downcall("pread64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PWRITE = downcall("pwrite64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
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
    private static final MethodHandle FTRUNCATE = downcall("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MMAP = downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = downcall("munmap",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
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

    private static ErrnoException failure(String call, MemorySegment capture, String detail) {
        return ErrnoException.of(errno(capture), call, detail);
    }

    /** Rethrows what a downcall cannot really throw, for the compiler's sake. */
    private static RuntimeException unexpected(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException("downcall failed", t);
    }

    public static int open(String path, int flags, int mode) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cPath = arena.allocateFrom(path);
            while (true) {
                int fd = (int) OPEN.invokeExact(capture, cPath, flags, mode);
                if (fd >= 0) {
                    return fd;
                }
                if (errno(capture) != Errno.EINTR.code()) {
                    throw failure("open", capture, path);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static void close(int fd) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            // Never retry close on EINTR: on Linux the descriptor is already released.
            if ((int) CLOSE.invokeExact(capture, fd) != 0) {
                throw failure("close", capture, "fd " + fd);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** One pread(2); returns the byte count, which may be short (0 at end of file). */
    public static long pread(int fd, MemorySegment buf, long offset) throws ErrnoException {
        return rw(PREAD, "pread", fd, buf, offset);
    }

    /** One pwrite(2); returns the byte count, which may be short. */
    public static long pwrite(int fd, MemorySegment buf, long offset) throws ErrnoException {
        return rw(PWRITE, "pwrite", fd, buf, offset);
    }

    private static long rw(MethodHandle handle, String call, int fd, MemorySegment buf, long offset)
            throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            while (true) {
                long n = (long) handle.invokeExact(capture, fd, buf, buf.byteSize(), offset);
                if (n >= 0) {
                    return n;
                }
                if (errno(capture) != Errno.EINTR.code()) {
                    throw failure(call, capture, "fd " + fd + ", offset " + offset + ", length " + buf.byteSize());
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static void fsync(int fd) throws ErrnoException {
        simple(FSYNC, "fsync", fd);
    }

    public static void fdatasync(int fd) throws ErrnoException {
        simple(FDATASYNC, "fdatasync", fd);
    }

    private static void simple(MethodHandle handle, String call, int fd) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            while ((int) handle.invokeExact(capture, fd) != 0) {
                if (errno(capture) != Errno.EINTR.code()) {
                    throw failure(call, capture, "fd " + fd);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** statx(2) on an open descriptor, asking for type, mode, size and the direct-IO alignment. */
    public static Statx statx(int fd) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(256, 8);
            MemorySegment empty = arena.allocateFrom("");
            int mask = STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_DIOALIGN;
            if ((int) STATX.invokeExact(capture, fd, empty, AT_EMPTY_PATH, mask, buf) != 0) {
                throw failure("statx", capture, "fd " + fd);
            }
            // struct statx offsets: stx_mask 0, stx_blksize 4, stx_mode 28 (u16), stx_size 40,
            // stx_dio_mem_align 152, stx_dio_offset_align 156.
            return new Statx(
                    buf.get(JAVA_INT, 0),
                    Short.toUnsignedInt(buf.get(java.lang.foreign.ValueLayout.JAVA_SHORT, 28)),
                    buf.get(JAVA_LONG, 40),
                    buf.get(JAVA_INT, 4),
                    buf.get(JAVA_INT, 152),
                    buf.get(JAVA_INT, 156));
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
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
        MemorySegment capture = CAPTURE.get();
        try {
            if ((int) IOCTL.invokeExact(capture, fd, request, arg) != 0) {
                throw failure("ioctl(" + name + ")", capture, "fd " + fd);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static int fcntlGetFlags(int fd) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            int flags = (int) FCNTL.invokeExact(capture, fd, F_GETFL, 0);
            if (flags < 0) {
                throw failure("fcntl(F_GETFL)", capture, "fd " + fd);
            }
            return flags;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static void fallocate(int fd, int mode, long offset, long length) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            while ((int) FALLOCATE.invokeExact(capture, fd, mode, offset, length) != 0) {
                if (errno(capture) != Errno.EINTR.code()) {
                    throw failure("fallocate", capture,
                            "fd " + fd + ", mode " + mode + ", offset " + offset + ", length " + length);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static void ftruncate(int fd, long length) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            if ((int) FTRUNCATE.invokeExact(capture, fd, length) != 0) {
                throw failure("ftruncate", capture, "fd " + fd + ", length " + length);
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** flock(2); with LOCK_NB a held lock fails with EWOULDBLOCK (EAGAIN). */
    public static void flock(int fd, int operation) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            while ((int) FLOCK.invokeExact(capture, fd, operation) != 0) {
                if (errno(capture) != Errno.EINTR.code()) {
                    throw failure("flock", capture, "fd " + fd);
                }
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /** mmap(2) of {@code length} bytes of {@code fd}; the segment is sized to the mapping. */
    public static MemorySegment mmap(long length, int prot, int flags, int fd, long offset) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            MemorySegment addr = (MemorySegment) MMAP.invokeExact(capture, MemorySegment.NULL, length, prot, flags, fd, offset);
            if (addr.address() == -1L) {
                throw failure("mmap", capture, "fd " + fd + ", length " + length + ", offset " + offset);
            }
            return addr.reinterpret(length);
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    public static void munmap(MemorySegment mapping) throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            if ((int) MUNMAP.invokeExact(capture, mapping, mapping.byteSize()) != 0) {
                throw failure("munmap", capture, "length " + mapping.byteSize());
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }

    /**
     * syscall(2) with six arguments (unused ones 0). Returns the result, or throws with the errno
     * when the C wrapper returned -1. EINTR is returned to the caller as an exception: only the
     * caller knows whether repeating the call is right.
     */
    public static long syscall(String name, long number, long a1, long a2, long a3, long a4, long a5, long a6)
            throws ErrnoException {
        MemorySegment capture = CAPTURE.get();
        try {
            long r = (long) SYSCALL.invokeExact(capture, number, a1, a2, a3, a4, a5, a6);
            if (r == -1L) {
                throw failure(name, capture, null);
            }
            return r;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw unexpected(t);
        }
    }
}
