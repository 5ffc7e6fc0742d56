package io.coherentfs.blockdev;

import io.coherentfs.blockdev.engine.IoEngine;
import io.coherentfs.blockdev.engine.IoEngineKind;
import io.coherentfs.blockdev.engine.IoEngines;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.error.ErrnoException.MisalignedIoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.blockdev.ffm.LinuxSyscalls.Statx;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An image file or block device opened with O_DIRECT through FFM: synchronous pread/pwrite
 * (preadv/pwritev for vectored requests) on the caller's thread, asynchronous requests through an
 * {@link IoEngine}. A vectored request reaches the kernel as one call, every segment in place.
 *
 * <p>Regular files are opened {@code O_RDWR|O_DIRECT|O_CLOEXEC}, block devices also
 * {@code O_EXCL} (the kernel then refuses a second exclusive opener, e.g. a mounted filesystem)
 * unless {@link Options#exclusive} is off,
 * or {@code O_RDONLY} instead of {@code O_RDWR} when read-only. The geometry is fixed at open:
 * the image's size, rounded down to the direct-IO alignment, is the device's size.
 */
public final class DirectDevice implements BlockDevice {

    /**
     * How to open a device.
     *
     * @param readOnly    open O_RDONLY; writes fail with EROFS
     * @param engine      which asynchronous engine to run
     * @param queueDepth  requests the engine keeps in flight
     * @param minimumSize devices smaller than this are refused
     * @param exclusive   open a block device O_EXCL (ignored for image files); off only when the
     *                    kernel itself claims the device for us (a fuseblk mount), whose exclusive
     *                    claim would otherwise collide with ours
     */
    public record Options(boolean readOnly, IoEngineKind engine, int queueDepth, long minimumSize,
            boolean exclusive) {
        public static final Options DEFAULT = new Options(false, IoEngineKind.AUTO, 64, 64 * 1024, true);

        public Options withReadOnly(boolean ro) {
            return new Options(ro, engine, queueDepth, minimumSize, exclusive);
        }

        public Options withEngine(IoEngineKind kind) {
            return new Options(readOnly, kind, queueDepth, minimumSize, exclusive);
        }

        public Options withQueueDepth(int depth) {
            return new Options(readOnly, engine, depth, minimumSize, exclusive);
        }

        public Options withMinimumSize(long bytes) {
            return new Options(readOnly, engine, queueDepth, bytes, exclusive);
        }

        public Options withExclusive(boolean excl) {
            return new Options(readOnly, engine, queueDepth, minimumSize, excl);
        }
    }

    private static final int DEFAULT_ALIGN = 4096;

    private final int fd;
    private final DeviceGeometry geometry;
    private final boolean readOnly;
    private final IoEngine engine;
    private final AtomicBoolean closed = new AtomicBoolean();

    private DirectDevice(int fd, DeviceGeometry geometry, boolean readOnly, IoEngine engine) {
        this.fd = fd;
        this.geometry = geometry;
        this.readOnly = readOnly;
        this.engine = engine;
    }

    public static DirectDevice open(Path path) throws IOException {
        return open(path, Options.DEFAULT);
    }

    /**
     * Opens {@code path}, an existing regular file or block device.
     *
     * @throws ErrnoException with a message that says what is wrong: missing, not a file or
     *     device, on a filesystem without O_DIRECT, in use by someone else, too small
     */
    public static DirectDevice open(Path path, Options options) throws IOException {
        String name = path.toString();
        if (!Files.exists(path)) {
            throw new ErrnoException.NoEntryException("open", name + " does not exist");
        }
        boolean blockDevice = isBlockDevice(path);
        if (!blockDevice && !Files.isRegularFile(path)) {
            throw new ErrnoException.InvalidArgumentException("open",
                    name + " is neither a regular image file nor a block device");
        }
        int flags = (options.readOnly() ? LinuxSyscalls.O_RDONLY : LinuxSyscalls.O_RDWR)
                | LinuxSyscalls.O_DIRECT | LinuxSyscalls.O_CLOEXEC
                | (blockDevice && options.exclusive() ? LinuxSyscalls.O_EXCL : 0);
        int fd;
        try {
            fd = LinuxSyscalls.open(name, flags, 0);
        } catch (ErrnoException e) {
            throw explainOpenFailure(e, name);
        }
        try {
            if ((LinuxSyscalls.fcntlGetFlags(fd) & LinuxSyscalls.O_DIRECT) == 0) {
                throw new ErrnoException.InvalidArgumentException("open",
                        name + ": the kernel dropped O_DIRECT from the descriptor");
            }
            DeviceGeometry geometry = probeGeometry(fd, name, blockDevice);
            if (geometry.size() < options.minimumSize()) {
                throw new ErrnoException.InvalidArgumentException("open", name + " is too small: "
                        + geometry.size() + " bytes, at least " + options.minimumSize() + " are needed");
            }
            IoEngine engine = IoEngines.start(options.engine(), options.queueDepth());
            return new DirectDevice(fd, geometry, options.readOnly(), engine);
        } catch (IOException | RuntimeException e) {
            try {
                LinuxSyscalls.close(fd);
            } catch (ErrnoException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    public static boolean isBlockDevice(Path path) throws IOException {
        int mode = (Integer) Files.getAttribute(path, "unix:mode");
        return (mode & LinuxSyscalls.S_IFMT) == LinuxSyscalls.S_IFBLK;
    }

    private static ErrnoException explainOpenFailure(ErrnoException e, String name) {
        String why;
        if (e.errno() == Errno.EINVAL.code()) {
            why = name + ": the filesystem holding it does not support O_DIRECT; put the image on ext4, xfs or btrfs";
        } else if (e.errno() == Errno.EBUSY.code()) {
            why = name + " is in use: mounted, or opened exclusively by another program";
        } else if (e.errno() == Errno.EACCES.code() || e.errno() == Errno.EPERM.code()) {
            why = name + ": permission denied";
        } else if (e.errno() == Errno.EROFS.code()) {
            why = name + " is on a read-only filesystem; open it read-only";
        } else {
            return e;
        }
        ErrnoException explained = ErrnoException.of(e.errno(), "open", why);
        explained.initCause(e);
        return explained;
    }

    private static DeviceGeometry probeGeometry(int fd, String name, boolean blockDevice) throws ErrnoException {
        Statx st = LinuxSyscalls.statx(fd);
        long size = blockDevice
                ? LinuxSyscalls.ioctlReadLong(fd, LinuxSyscalls.BLKGETSIZE64, "BLKGETSIZE64")
                : st.size();
        int offsetAlign;
        int memAlign;
        String source;
        int physical;
        if (st.hasDioAlign()) {
            offsetAlign = st.dioOffsetAlign();
            memAlign = Math.max(1, st.dioMemAlign());
            source = "statx";
        } else if (blockDevice) {
            offsetAlign = LinuxSyscalls.ioctlReadInt(fd, LinuxSyscalls.BLKSSZGET, "BLKSSZGET");
            memAlign = offsetAlign;
            source = "BLKSSZGET";
        } else {
            offsetAlign = DEFAULT_ALIGN;
            memAlign = DEFAULT_ALIGN;
            source = "default";
        }
        if (blockDevice) {
            physical = LinuxSyscalls.ioctlReadInt(fd, LinuxSyscalls.BLKPBSZGET, "BLKPBSZGET");
        } else {
            physical = Math.max(offsetAlign, st.blockSize() > 0 ? Math.min(st.blockSize(), DEFAULT_ALIGN) : DEFAULT_ALIGN);
        }
        long usable = size - size % offsetAlign;
        return new DeviceGeometry(name, blockDevice, usable, offsetAlign, memAlign, physical, source);
    }

    @Override
    public DeviceGeometry geometry() {
        return geometry;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public String engineName() {
        return engine.name();
    }

    /** The O_DIRECT descriptor, for diagnostics (e.g. /proc/self/fdinfo); never close it. */
    public int fd() {
        return fd;
    }

    /**
     * Checks a request against the device's rules; returns the failure instead of throwing so
     * that the asynchronous paths can hand it to their callback.
     */
    private ErrnoException check(String call, long offset, MemorySegment buf, boolean write) {
        ErrnoException bad = checkAccess(call, write);
        if (bad != null) {
            return bad;
        }
        if (!buf.isNative()) {
            return new ErrnoException.InvalidArgumentException(call, "direct IO needs native memory, not a heap segment");
        }
        long length = buf.byteSize();
        int align = geometry.dioOffsetAlign();
        if (offset < 0) {
            return new ErrnoException.InvalidArgumentException(call, "negative offset " + offset);
        }
        if (offset % align != 0) {
            return new MisalignedIoException(call, "offset", offset, align);
        }
        if (length == 0 || length % align != 0) {
            return new MisalignedIoException(call, "length", length, align);
        }
        if (length > Integer.MAX_VALUE) {
            return new ErrnoException.InvalidArgumentException(call, "length " + length + " exceeds 2 GiB per request");
        }
        if (buf.address() % geometry.dioMemoryAlign() != 0) {
            return new MisalignedIoException(call, "buffer address", buf.address(), geometry.dioMemoryAlign());
        }
        return checkRange(call, offset, length, write);
    }

    /** {@link #check} for a vectored request: every segment, then the whole range. */
    private ErrnoException checkVectored(String call, long offset, List<MemorySegment> bufs, boolean write) {
        ErrnoException bad = checkAccess(call, write);
        if (bad == null) {
            bad = IoVectors.checkShape(call, offset, bufs, geometry);
        }
        if (bad == null) {
            bad = checkRange(call, offset, IoVectors.totalLength(bufs), write);
        }
        return bad;
    }

    private ErrnoException checkAccess(String call, boolean write) {
        if (closed.get()) {
            return new ErrnoException(Errno.EBADF, call, geometry.path() + " is closed");
        }
        if (write && readOnly) {
            return new ErrnoException.ReadOnlyException(call, geometry.path() + " is open read-only");
        }
        return null;
    }

    private ErrnoException checkRange(String call, long offset, long length, boolean write) {
        if (offset + length > geometry.size() || offset + length < 0) {
            String range = "[" + offset + ", " + (offset + length) + ") is beyond the end of "
                    + geometry.path() + " (" + geometry.size() + " bytes)";
            return write ? new ErrnoException.NoSpaceException(call, range)
                    : new ErrnoException.InvalidArgumentException(call, range);
        }
        return null;
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        ErrnoException bad = check("pread", offset, dst, false);
        if (bad != null) {
            throw bad;
        }
        long done = 0;
        while (done < dst.byteSize()) {
            long n = LinuxSyscalls.pread(fd, dst.asSlice(done), offset + done);
            if (n == 0) {
                throw new ErrnoException(Errno.EIO, "pread", "unexpected end of " + geometry.path()
                        + " at " + (offset + done) + " (did the image shrink?)");
            }
            done += n;
        }
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        ErrnoException bad = check("pwrite", offset, src, true);
        if (bad != null) {
            throw bad;
        }
        long done = 0;
        while (done < src.byteSize()) {
            long n = LinuxSyscalls.pwrite(fd, src.asSlice(done), offset + done);
            if (n == 0) {
                throw new ErrnoException.NoSpaceException("pwrite", "wrote nothing at " + (offset + done));
            }
            done += n;
        }
    }

    @Override
    public void readv(long offset, List<MemorySegment> dsts) throws IOException {
        ErrnoException bad = checkVectored("preadv", offset, dsts, false);
        if (bad != null) {
            throw bad;
        }
        long length = IoVectors.totalLength(dsts);
        long done = 0;
        while (done < length) {
            long n = LinuxSyscalls.preadv(fd, dsts, done, offset + done);
            if (n == 0) {
                throw new ErrnoException(Errno.EIO, "preadv", "unexpected end of " + geometry.path()
                        + " at " + (offset + done) + " (did the image shrink?)");
            }
            done += n;
        }
    }

    @Override
    public void writev(long offset, List<MemorySegment> srcs) throws IOException {
        ErrnoException bad = checkVectored("pwritev", offset, srcs, true);
        if (bad != null) {
            throw bad;
        }
        long length = IoVectors.totalLength(srcs);
        long done = 0;
        while (done < length) {
            long n = LinuxSyscalls.pwritev(fd, srcs, done, offset + done);
            if (n == 0) {
                throw new ErrnoException.NoSpaceException("pwritev", "wrote nothing at " + (offset + done));
            }
            done += n;
        }
    }

    @Override
    public void flush() throws IOException {
        ensureOpen("fdatasync");
        LinuxSyscalls.fdatasync(fd);
    }

    @Override
    public void fsync() throws IOException {
        ensureOpen("fsync");
        LinuxSyscalls.fsync(fd);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        ensureOpen("discard");
        if (readOnly) {
            throw new ErrnoException.ReadOnlyException("discard", geometry.path() + " is open read-only");
        }
        int align = geometry.dioOffsetAlign();
        if (offset < 0 || offset % align != 0 || length % align != 0 || offset + length > geometry.size()) {
            throw new ErrnoException.InvalidArgumentException("discard", "range [" + offset + ", "
                    + (offset + length) + ") must be " + align + "-aligned and inside the device");
        }
        if (length == 0) {
            return;
        }
        if (geometry.blockDevice()) {
            LinuxSyscalls.blkDiscard(fd, offset, length);
        } else {
            LinuxSyscalls.fallocate(fd, LinuxSyscalls.FALLOC_FL_PUNCH_HOLE | LinuxSyscalls.FALLOC_FL_KEEP_SIZE,
                    offset, length);
        }
    }

    private void ensureOpen(String call) throws ErrnoException {
        if (closed.get()) {
            throw new ErrnoException(Errno.EBADF, call, geometry.path() + " is closed");
        }
    }

    @Override
    public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
        ErrnoException bad = check("read", offset, dst, false);
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new SingleTransfer(false, offset, dst, callback).next();
    }

    @Override
    public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
        ErrnoException bad = check("write", offset, src, true);
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new SingleTransfer(true, offset, src, callback).next();
    }

    @Override
    public void submitReadv(long offset, List<MemorySegment> dsts, IoCallback callback) {
        ErrnoException bad = checkVectored("readv", offset, dsts, false);
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new VectoredTransfer(false, offset, List.copyOf(dsts), callback).next();
    }

    @Override
    public void submitWritev(long offset, List<MemorySegment> srcs, IoCallback callback) {
        ErrnoException bad = checkVectored("writev", offset, srcs, true);
        if (bad != null) {
            callback.onComplete(bad);
            return;
        }
        new VectoredTransfer(true, offset, List.copyOf(srcs), callback).next();
    }

    @Override
    public void submitFlush(boolean dataOnly, IoCallback callback) {
        String call = dataOnly ? "fdatasync" : "fsync";
        if (closed.get()) {
            callback.onComplete(new ErrnoException(Errno.EBADF, call, geometry.path() + " is closed"));
            return;
        }
        engine.submitFsync(fd, dataOnly, result -> callback.onComplete(
                result < 0 ? ErrnoException.of((int) -result, call, geometry.path()) : null));
    }

    /**
     * One asynchronous read or write: continues short transfers from where they stopped until
     * every byte moved, then completes the caller's callback. Runs on the completion thread,
     * except the first submission; at most one engine request of a transfer is in flight, so
     * {@code done} is handed from completion to completion without racing.
     */
    private abstract class Transfer implements IoEngine.Completion {
        final boolean write;
        final long offset;
        final long length;
        private final IoCallback callback;
        long done;

        Transfer(boolean write, long offset, long length, IoCallback callback) {
            this.write = write;
            this.offset = offset;
            this.length = length;
            this.callback = callback;
        }

        /** Hands the engine the bytes from {@code done} on, as one request. */
        abstract void submitRest();

        abstract String call();

        void next() {
            try {
                submitRest();
            } catch (RuntimeException e) {
                callback.onComplete(new ErrnoException(Errno.EIO, call(), "submission failed: " + e.getMessage()));
            }
        }

        @Override
        public void complete(long result) {
            String call = call();
            if (result < 0) {
                callback.onComplete(ErrnoException.of((int) -result, call,
                        geometry.path() + ", offset " + (offset + done) + ", length " + (length - done)));
                return;
            }
            if (result == 0) {
                callback.onComplete(write
                        ? new ErrnoException.NoSpaceException(call, "wrote nothing at " + (offset + done))
                        : new ErrnoException(Errno.EIO, call, "unexpected end of " + geometry.path() + " at " + (offset + done)));
                return;
            }
            done += result;
            if (done < length) {
                next();
            } else {
                callback.onComplete(null);
            }
        }
    }

    private final class SingleTransfer extends Transfer {
        private final MemorySegment buf;

        SingleTransfer(boolean write, long offset, MemorySegment buf, IoCallback callback) {
            super(write, offset, buf.byteSize(), callback);
            this.buf = buf;
        }

        @Override
        String call() {
            return write ? "write" : "read";
        }

        @Override
        void submitRest() {
            MemorySegment rest = buf.asSlice(done);
            if (write) {
                engine.submitWrite(fd, offset + done, rest, this);
            } else {
                engine.submitRead(fd, offset + done, rest, this);
            }
        }
    }

    /** A vectored transfer: one READV/WRITEV (preadv/pwritev) per attempt, all segments in place. */
    private final class VectoredTransfer extends Transfer {
        /** An immutable snapshot: the caller may reuse its list once the submit returned. */
        private final List<MemorySegment> bufs;

        VectoredTransfer(boolean write, long offset, List<MemorySegment> bufs, IoCallback callback) {
            super(write, offset, IoVectors.totalLength(bufs), callback);
            this.bufs = bufs;
        }

        @Override
        String call() {
            return write ? "writev" : "readv";
        }

        @Override
        void submitRest() {
            List<MemorySegment> rest = done == 0 ? bufs : IoVectors.skip(bufs, done);
            if (write) {
                engine.submitWritev(fd, offset + done, rest, this);
            } else {
                engine.submitReadv(fd, offset + done, rest, this);
            }
        }
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            engine.close();
        } finally {
            LinuxSyscalls.close(fd);
        }
    }
}
