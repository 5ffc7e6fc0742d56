package io.coherentfs.core.vfs;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CompletionStage;

/**
 * fs-core's public surface: an inode-based filesystem API in the shape of FUSE's low-level
 * protocol, for the FUSE frontend and for Java programs that embed the engine.
 *
 * <p>Errors are {@link io.coherentfs.blockdev.error.ErrnoException}s carrying exactly the errno
 * a Linux filesystem returns for the same call (ENOENT, EEXIST, ENOTEMPTY, ENOSPC, EFBIG,
 * ENAMETOOLONG, EISDIR, ENOTDIR, EXDEV, EINVAL, ...). Names are byte strings, as on Linux.
 *
 * <p>Lookup counts: every call that returns an {@link Attr} for an entry (lookup, mknod, mkdir,
 * symlink, link, create) counts one lookup of that inode; {@link #forget} gives them back. An
 * inode whose last link is gone lives on while it has lookups or open files.
 *
 * <p>Thread-safe: any call from any thread.
 */
public interface Vfs extends AutoCloseable {
    /** The root directory's inode number. */
    long ROOT = 1;

    /** renameat2 flags. */
    int RENAME_NOREPLACE = 1;
    int RENAME_EXCHANGE = 2;

    Attr lookup(long parent, byte[] name) throws IOException;

    void forget(long ino, long lookups) throws IOException;

    Attr getattr(long ino) throws IOException;

    Attr setattr(long ino, SetAttr changes) throws IOException;

    /** Creates a regular file, device node, fifo or socket: {@code mode} carries the type bits. */
    Attr mknod(long parent, byte[] name, int mode, long rdev, Caller caller) throws IOException;

    Attr mkdir(long parent, byte[] name, int mode, Caller caller) throws IOException;

    Attr symlink(long parent, byte[] name, byte[] target, Caller caller) throws IOException;

    byte[] readlink(long ino) throws IOException;

    Attr link(long ino, long newParent, byte[] newName) throws IOException;

    void unlink(long parent, byte[] name) throws IOException;

    void rmdir(long parent, byte[] name) throws IOException;

    void rename(long parent, byte[] name, long newParent, byte[] newName, int flags) throws IOException;

    /** Opens an inode; {@code flags} are open(2)'s (access mode, O_TRUNC, O_APPEND, O_DIRECT, O_SYNC ...). */
    OpenFile open(long ino, int flags) throws IOException;

    /**
     * Reads up to {@code dst.byteSize()} bytes at {@code offset}; returns the count, short only
     * at end of file.
     */
    int read(OpenFile file, long offset, MemorySegment dst) throws IOException;

    /** Writes all of {@code src} at {@code offset} (at end of file for O_APPEND); returns the count. */
    int write(OpenFile file, long offset, MemorySegment src) throws IOException;

    /**
     * Writes {@code length} bytes of a mapped view at {@code srcOffset} to the file at
     * {@code offset}: write(2) whose buffer is an mmap of a file (this one or another). A fault
     * in the source fails the call with EFAULT, or makes it short after some progress.
     */
    int write(OpenFile file, long offset, MappedView src, long srcOffset, long length) throws IOException;

    /**
     * Asynchronous direct read (io_submit of IOCB_CMD_PREAD on an O_DIRECT file): offset, length
     * and memory 512-aligned, else EINVAL. The stage completes with the bytes read (short at EOF).
     */
    CompletionStage<Integer> aioRead(OpenFile file, long offset, MemorySegment dst) throws IOException;

    /**
     * Asynchronous direct write: offset, length and native memory 512-aligned, else EINVAL (a
     * heap segment goes through a bounce buffer). {@code src} must stay valid until the stage
     * completes. Many
     * may be in flight on one file. Extending and sub-block writes complete before this returns.
     */
    CompletionStage<Integer> aioWrite(OpenFile file, long offset, MemorySegment src) throws IOException;

    /** {@link #aioWrite(OpenFile, long, MemorySegment)} whose source is a mapped view (of this file or another). */
    CompletionStage<Integer> aioWrite(OpenFile file, long offset, MappedView src, long srcOffset, long length)
            throws IOException;

    /** mmap(2) with MAP_SHARED: a page-granular view of the open file through the page cache. */
    MappedView map(OpenFile file) throws IOException;

    /** fsync(2) / fdatasync(2): the file's data and the metadata needed to read it are durable. */
    void fsync(OpenFile file, boolean dataOnly) throws IOException;

    /** close(2) of one descriptor of the open file (there may be others). */
    void flush(OpenFile file) throws IOException;

    void release(OpenFile file) throws IOException;

    /** fallocate(2) modes. */
    int FALLOC_FL_KEEP_SIZE = 0x01;
    int FALLOC_FL_PUNCH_HOLE = 0x02;
    int FALLOC_FL_ZERO_RANGE = 0x10;

    /**
     * fallocate(2): the default mode and KEEP_SIZE allocate (unwritten: reads as zeros),
     * PUNCH_HOLE|KEEP_SIZE frees, ZERO_RANGE (optionally with KEEP_SIZE) zeroes; any other mode
     * is EOPNOTSUPP.
     */
    void fallocate(OpenFile file, int mode, long offset, long length) throws IOException;

    /** lseek(2) whence values this call serves. */
    int SEEK_DATA = 3;
    int SEEK_HOLE = 4;

    /** lseek(2) with SEEK_DATA or SEEK_HOLE: ENXIO at or past the end, or with no data after offset. */
    long lseek(OpenFile file, long offset, int whence) throws IOException;

    /** setxattr(2) flags. */
    int XATTR_CREATE = 1;
    int XATTR_REPLACE = 2;

    /** The value of extended attribute {@code name} ("user.x", "trusted.y", ...); ENODATA when absent. */
    byte[] getxattr(long ino, byte[] name) throws IOException;

    void setxattr(long ino, byte[] name, byte[] value, int flags) throws IOException;

    /** Every attribute name of the inode. */
    List<byte[]> listxattr(long ino) throws IOException;

    void removexattr(long ino, byte[] name) throws IOException;

    /**
     * Up to {@code max} entries of directory {@code ino}, starting at {@code cookie} (0 for the
     * beginning, else a {@link DirEntry#nextCookie} from an earlier call); "." and ".." first.
     */
    List<DirEntry> readdir(long ino, long cookie, int max) throws IOException;

    StatFs statfs() throws IOException;

    /**
     * Whether the page cache is under half its budget, so that reading around a random miss is
     * worth the memory it takes (the engine's own read-around follows this rule). A frontend that
     * fills a cache in front of this one (the kernel's, through FUSE_NOTIFY_STORE) asks before
     * reading ahead for it.
     */
    boolean readAroundWelcome();

    /** Makes every completed change durable (syncfs). */
    void sync() throws IOException;

    /** Writes everything back, marks the image clean and closes the device. */
    @Override
    void close() throws IOException;
}
