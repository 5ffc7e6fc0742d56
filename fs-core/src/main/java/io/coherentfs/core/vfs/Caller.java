package io.coherentfs.core.vfs;

/**
 * Who asks: the credentials a new inode takes its owner from (FUSE's request context), and the
 * umask already applied by the kernel or the caller.
 */
public record Caller(int uid, int gid) {
    public static final Caller ROOT = new Caller(0, 0);
}
