package io.coherentfs.core.vfs;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;

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

    /** fsync(2) / fdatasync(2): the file's data and the metadata needed to read it are durable. */
    void fsync(OpenFile file, boolean dataOnly) throws IOException;

    void release(OpenFile file) throws IOException;

    /**
     * Up to {@code max} entries of directory {@code ino}, starting at {@code cookie} (0 for the
     * beginning, else a {@link DirEntry#nextCookie} from an earlier call); "." and ".." first.
     */
    List<DirEntry> readdir(long ino, long cookie, int max) throws IOException;

    StatFs statfs() throws IOException;

    /** Makes every completed change durable (syncfs). */
    void sync() throws IOException;

    /** Writes everything back, marks the image clean and closes the device. */
    @Override
    void close() throws IOException;
}
