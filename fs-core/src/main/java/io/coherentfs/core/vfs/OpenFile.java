package io.coherentfs.core.vfs;

/**
 * An open file description: what {@link Vfs#open} returns and every IO call takes.
 *
 * @param id    unique among the open files of one filesystem (FUSE's fh)
 * @param ino   the inode
 * @param flags open(2)'s flags
 */
public record OpenFile(long id, long ino, int flags) {
    public static final int O_ACCMODE = 3;
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_TRUNC = 0x200;
    public static final int O_APPEND = 0x400;
    public static final int O_DSYNC = 0x1000;
    public static final int O_DIRECT = 0x4000;
    public static final int O_SYNC = 0x101000;

    public boolean readable() {
        return (flags & O_ACCMODE) != O_WRONLY;
    }

    public boolean writable() {
        return (flags & O_ACCMODE) != O_RDONLY;
    }
}
