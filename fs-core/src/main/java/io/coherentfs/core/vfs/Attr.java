package io.coherentfs.core.vfs;

import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;

/**
 * What stat(2) says of an inode.
 *
 * @param ino        inode number (st_ino; readdir reports the same)
 * @param generation with {@code ino}, identifies this incarnation of the inode
 * @param blocks     512-byte units allocated (st_blocks)
 */
public record Attr(long ino, long generation, int mode, int nlink, int uid, int gid, long rdev, long size,
        long blocks, Timespec atime, Timespec mtime, Timespec ctime, Timespec crtime) {

    public static final int BLOCK_SIZE = 4096;

    public static Attr of(long ino, InodeRecord r) {
        return new Attr(ino, r.generation(), r.mode(), r.nlink(), r.uid(), r.gid(), r.rdev(), r.size(),
                r.blocks() * (BLOCK_SIZE / 512), r.atime(), r.mtime(), r.ctime(), r.crtime());
    }

    public int type() {
        return mode & InodeRecord.S_IFMT;
    }

    public boolean isDirectory() {
        return type() == InodeRecord.S_IFDIR;
    }
}
