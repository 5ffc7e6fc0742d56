package io.coherentfs.core.format;

import io.coherentfs.core.btree.BTreeSpec;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.xattr.XattrCodec;
import java.nio.ByteBuffer;

/**
 * The shapes and tree ids of the filesystem-wide trees (docs/STORAGE.md). Part of the on-disk
 * format: the engine and fsck both read them from here.
 */
public final class TreeShapes {
    public static final BTreeSpec INODES = BTreeSpec.of(8, InodeRecord.SIZE);
    public static final BTreeSpec DIRENTS = BTreeSpec.of(DirentCodec.KEY_SIZE, DirentCodec.VALUE_SIZE);
    public static final BTreeSpec ORPHANS = BTreeSpec.of(8, 0);
    public static final BTreeSpec XATTRS = BTreeSpec.of(XattrCodec.KEY_SIZE, XattrCodec.VALUE_SIZE);
    public static final BTreeSpec EXTENTS = ExtentMap.SPEC;

    // Tree ids of the filesystem-wide trees; an extent map's id is its inode number.
    public static final long INODE_TREE = -16;
    public static final long DIRENT_TREE = -15;
    public static final long XATTR_TREE = -14;
    public static final long ORPHAN_TREE = -13;

    private TreeShapes() {}

    /** The key of inode {@code ino} in the inode and orphan trees. */
    public static byte[] inoKey(long ino) {
        return ByteBuffer.allocate(8).putLong(ino).array();
    }

    public static long inoOf(byte[] key) {
        return ByteBuffer.wrap(key).getLong();
    }
}
