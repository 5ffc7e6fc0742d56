package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.StatFs;
import java.lang.foreign.MemorySegment;

/**
 * Encoders of the reply structs ({@link FuseAbi} has the layouts). Each writes every byte of its
 * struct, padding included, so reply buffers are reused without clearing. Timeouts are given
 * in whole seconds (the kernel takes seconds plus nanoseconds).
 */
public final class FuseStructs {
    private FuseStructs() {}

    /** struct fuse_attr at {@code at}. st_blksize is the engine's block size, as stat(2) shows it. */
    public static void putAttr(MemorySegment m, long at, Attr a) {
        m.set(JAVA_LONG, at + FuseAbi.ATTR_INO, a.ino());
        m.set(JAVA_LONG, at + FuseAbi.ATTR_SIZE, a.size());
        m.set(JAVA_LONG, at + FuseAbi.ATTR_BLOCKS, a.blocks());
        m.set(JAVA_LONG, at + FuseAbi.ATTR_ATIME, a.atime().seconds());
        m.set(JAVA_LONG, at + FuseAbi.ATTR_MTIME, a.mtime().seconds());
        m.set(JAVA_LONG, at + FuseAbi.ATTR_CTIME, a.ctime().seconds());
        m.set(JAVA_INT, at + FuseAbi.ATTR_ATIMENSEC, a.atime().nanos());
        m.set(JAVA_INT, at + FuseAbi.ATTR_MTIMENSEC, a.mtime().nanos());
        m.set(JAVA_INT, at + FuseAbi.ATTR_CTIMENSEC, a.ctime().nanos());
        m.set(JAVA_INT, at + FuseAbi.ATTR_MODE, a.mode());
        m.set(JAVA_INT, at + FuseAbi.ATTR_NLINK, a.nlink());
        m.set(JAVA_INT, at + FuseAbi.ATTR_UID, a.uid());
        m.set(JAVA_INT, at + FuseAbi.ATTR_GID, a.gid());
        m.set(JAVA_INT, at + FuseAbi.ATTR_RDEV, (int) a.rdev());
        m.set(JAVA_INT, at + FuseAbi.ATTR_BLKSIZE, Attr.BLOCK_SIZE);
        m.set(JAVA_INT, at + FuseAbi.ATTR_FLAGS, 0);
    }

    /**
     * struct fuse_entry_out at {@code at}; {@code a == null} is a negative entry (nodeid 0: the
     * kernel caches "no such name" for {@code entrySeconds} and counts no lookup).
     */
    public static void putEntry(MemorySegment m, long at, Attr a, long entrySeconds, long attrSeconds) {
        m.asSlice(at, FuseAbi.ENTRY_OUT_BYTES).fill((byte) 0);
        m.set(JAVA_LONG, at + FuseAbi.ENTRY_VALID, entrySeconds);
        if (a == null) {
            return;
        }
        m.set(JAVA_LONG, at + FuseAbi.ENTRY_NODEID, a.ino());
        m.set(JAVA_LONG, at + FuseAbi.ENTRY_GENERATION, a.generation());
        m.set(JAVA_LONG, at + FuseAbi.ENTRY_ATTR_VALID, attrSeconds);
        putAttr(m, at + FuseAbi.ENTRY_ATTR, a);
    }

    /** struct fuse_attr_out at {@code at}. */
    public static void putAttrOut(MemorySegment m, long at, Attr a, long attrSeconds) {
        m.set(JAVA_LONG, at + FuseAbi.ATTR_OUT_VALID, attrSeconds);
        m.set(JAVA_INT, at + FuseAbi.ATTR_OUT_VALID_NSEC, 0);
        m.set(JAVA_INT, at + FuseAbi.ATTR_OUT_VALID_NSEC + 4, 0);
        putAttr(m, at + FuseAbi.ATTR_OUT_ATTR, a);
    }

    /** struct fuse_open_out at {@code at}. */
    public static void putOpenOut(MemorySegment m, long at, long fh, int openFlags) {
        m.set(JAVA_LONG, at + FuseAbi.OPEN_OUT_FH, fh);
        m.set(JAVA_INT, at + FuseAbi.OPEN_OUT_FLAGS, openFlags);
        m.set(JAVA_INT, at + FuseAbi.OPEN_OUT_FLAGS + 4, 0);
    }

    /** struct fuse_kstatfs at {@code at}. */
    public static void putStatfs(MemorySegment m, long at, StatFs s) {
        m.asSlice(at, FuseAbi.STATFS_OUT_BYTES).fill((byte) 0);
        m.set(JAVA_LONG, at, s.totalBlocks());
        m.set(JAVA_LONG, at + 8, s.freeBlocks());
        m.set(JAVA_LONG, at + 16, s.availableBlocks());
        m.set(JAVA_LONG, at + 24, s.totalInodes());
        m.set(JAVA_LONG, at + 32, s.freeInodes());
        m.set(JAVA_INT, at + 40, (int) s.blockSize());
        m.set(JAVA_INT, at + 44, s.nameMax());
        m.set(JAVA_INT, at + 48, (int) s.blockSize());
    }

    /**
     * One struct fuse_dirent at {@code at} if it fits before {@code limit}; returns its padded
     * size, or 0 when it does not fit. {@code type} is the S_IFMT bits; the record carries
     * d_type (mode >> 12), {@code nextOffset} is what the kernel hands back to resume after it.
     */
    public static int putDirent(MemorySegment m, long at, long limit, long ino, long nextOffset, int type, byte[] name) {
        int size = FuseAbi.direntSize(name.length);
        if (at + size > limit) {
            return 0;
        }
        m.set(JAVA_LONG, at, ino);
        m.set(JAVA_LONG, at + 8, nextOffset);
        m.set(JAVA_INT, at + 16, name.length);
        m.set(JAVA_INT, at + 20, type >>> 12);
        MemorySegment.copy(name, 0, m, JAVA_BYTE, at + FuseAbi.DIRENT_NAME_OFFSET, name.length);
        for (long p = at + FuseAbi.DIRENT_NAME_OFFSET + name.length; p < at + size; p++) {
            m.set(JAVA_BYTE, p, (byte) 0);
        }
        return size;
    }
}
