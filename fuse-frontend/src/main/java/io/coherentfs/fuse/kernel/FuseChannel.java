package io.coherentfs.fuse.kernel;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One open /dev/fuse: the connection to the kernel's FUSE client of one mount. Requests are
 * read whole, one per read(2); each reply or notification is written whole, one writev(2) of
 * [fuse_out_header, payload...] (fs/fuse/dev.c takes a message in one write or rejects it).
 *
 * <p>Thread-safe: any number of threads may read and write at once (the kernel hands each
 * request to exactly one reader). The descriptor is closed once, by {@link #close}, after
 * every reader has stopped.
 */
public final class FuseChannel implements AutoCloseable {
    private static final int O_RDWR_CLOEXEC = LinuxSyscalls.O_RDWR | LinuxSyscalls.O_CLOEXEC;

    private final int fd;
    private volatile boolean closed;

    private FuseChannel(int fd) {
        this.fd = fd;
    }

    public static FuseChannel open() throws ErrnoException {
        return new FuseChannel(LinuxSyscalls.open("/dev/fuse", O_RDWR_CLOEXEC, 0));
    }

    public int fd() {
        return fd;
    }

    /**
     * Reads one request into {@code buf}; returns its length, or -1 once the connection is gone
     * (ENODEV: unmounted or aborted). EINTR and EAGAIN are repeated; ENOENT (the request was
     * interrupted before we could read it) too.
     */
    public int read(MemorySegment buf) throws ErrnoException {
        while (true) {
            try {
                return (int) LinuxSyscalls.read(fd, buf);
            } catch (ErrnoException e) {
                int errno = e.errno();
                if (errno == Errno.ENODEV.code()) {
                    return -1;
                }
                if (errno != Errno.EAGAIN.code() && errno != Errno.ENOENT.code() && errno != Errno.EINTR.code()) {
                    throw e;
                }
            }
        }
    }

    /**
     * Writes one message made of the first {@code count} iovecs in {@code iov}. Returns false
     * when the kernel no longer wanted it: ENOENT (the request was interrupted and answered
     * already) or ENODEV (the connection is gone).
     */
    public boolean write(MemorySegment iov, int count) throws ErrnoException {
        try {
            LinuxSyscalls.writev(fd, iov, count);
            return true;
        } catch (ErrnoException e) {
            if (e.errno() == Errno.ENOENT.code() || e.errno() == Errno.ENODEV.code()) {
                return false;
            }
            throw e;
        }
    }

    /** Per thread: one notification message and its iovec, reused (GC-managed, as LinuxSyscalls' scratch). */
    private static final ThreadLocal<MemorySegment> NOTIFY_SCRATCH = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(FuseAbi.OUT_HEADER_BYTES + FuseAbi.NOTIFY_INVAL_INODE_BYTES
                    + LinuxSyscalls.IOVEC_BYTES, 8));

    /**
     * Sends FUSE_NOTIFY_INVAL_INODE (unique 0, the code in the error field): the kernel drops
     * the inode's attributes and its cached pages of [offset, offset+length), unmapping them from
     * any mapping (fs/fuse/dev.c fuse_notify_inval_inode, inode.c fuse_reverse_inval_inode).
     * It waits for pages that are locked or under writeback in the range: never call it while
     * answering a request that holds such a page (a FUSE_WRITE_CACHE write-back).
     */
    public void invalidateInode(long nodeid, long offset, long length) throws ErrnoException {
        MemorySegment scratch = NOTIFY_SCRATCH.get();
        int size = FuseAbi.OUT_HEADER_BYTES + FuseAbi.NOTIFY_INVAL_INODE_BYTES;
        MemorySegment msg = scratch.asSlice(0, size);
        msg.set(ValueLayout.JAVA_INT, FuseAbi.OUT_LEN, size);
        msg.set(ValueLayout.JAVA_INT, FuseAbi.OUT_ERROR, FuseAbi.NOTIFY_INVAL_INODE);
        msg.set(ValueLayout.JAVA_LONG, FuseAbi.OUT_UNIQUE, 0L);
        msg.set(ValueLayout.JAVA_LONG, 16, nodeid);
        msg.set(ValueLayout.JAVA_LONG, 24, offset);
        msg.set(ValueLayout.JAVA_LONG, 32, length);
        MemorySegment iov = scratch.asSlice(size, LinuxSyscalls.IOVEC_BYTES);
        iov.set(ValueLayout.JAVA_LONG, 0, msg.address());
        iov.set(ValueLayout.JAVA_LONG, 8, size);
        write(iov, 1);
    }

    /**
     * Sends FUSE_NOTIFY_STORE: the kernel copies {@code data} into its page cache of
     * {@code nodeid} at {@code offset}, overwriting what it holds there — uptodate, locked or dirty
     * pages alike — and grows its i_size if the range ends past it (fs/fuse/dev.c
     * fuse_notify_store). It waits for each page's lock. The caller must know the data is what the
     * file holds and will hold until the kernel has it: see {@link KernelCacheFill}. Returns false
     * when the kernel no longer knows the inode (ENOENT) or the connection is gone (ENODEV).
     *
     * @param scratch at least {@code OUT_HEADER_BYTES + NOTIFY_STORE_BYTES + 2 * IOVEC_BYTES} bytes
     */
    public boolean store(long nodeid, long offset, MemorySegment data, MemorySegment scratch) throws ErrnoException {
        int head = FuseAbi.OUT_HEADER_BYTES + FuseAbi.NOTIFY_STORE_BYTES;
        MemorySegment msg = scratch.asSlice(0, head);
        msg.set(ValueLayout.JAVA_INT, FuseAbi.OUT_LEN, (int) (head + data.byteSize()));
        msg.set(ValueLayout.JAVA_INT, FuseAbi.OUT_ERROR, FuseAbi.NOTIFY_STORE);
        msg.set(ValueLayout.JAVA_LONG, FuseAbi.OUT_UNIQUE, 0L);
        msg.set(ValueLayout.JAVA_LONG, 16, nodeid);
        msg.set(ValueLayout.JAVA_LONG, 24, offset);
        msg.set(ValueLayout.JAVA_INT, 32, (int) data.byteSize());
        msg.set(ValueLayout.JAVA_INT, 36, 0);
        MemorySegment iov = scratch.asSlice(head, 2 * LinuxSyscalls.IOVEC_BYTES);
        iov.set(ValueLayout.JAVA_LONG, 0, msg.address());
        iov.set(ValueLayout.JAVA_LONG, 8, head);
        iov.set(ValueLayout.JAVA_LONG, 16, data.address());
        iov.set(ValueLayout.JAVA_LONG, 24, data.byteSize());
        return write(iov, 2);
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() throws ErrnoException {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        LinuxSyscalls.close(fd);
    }
}
