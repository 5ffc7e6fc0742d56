package io.coherentfs.core.vfs;

import io.coherentfs.core.inode.Timespec;

/**
 * The changes of one setattr call; a null field is left as it is. {@code atimeNow} /
 * {@code mtimeNow} stand for UTIME_NOW (the filesystem's clock, not the caller's).
 */
public record SetAttr(Integer mode, Integer uid, Integer gid, Long size, Timespec atime, boolean atimeNow,
        Timespec mtime, boolean mtimeNow) {

    public static final SetAttr NONE = new SetAttr(null, null, null, null, null, false, null, false);

    public static SetAttr size(long size) {
        return new SetAttr(null, null, null, size, null, false, null, false);
    }

    public static SetAttr mode(int mode) {
        return new SetAttr(mode, null, null, null, null, false, null, false);
    }

    public static SetAttr owner(Integer uid, Integer gid) {
        return new SetAttr(null, uid, gid, null, null, false, null, false);
    }

    public static SetAttr times(Timespec atime, Timespec mtime) {
        return new SetAttr(null, null, null, null, atime, false, mtime, false);
    }
}
