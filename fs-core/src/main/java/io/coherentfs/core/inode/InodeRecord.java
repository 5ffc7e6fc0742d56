package io.coherentfs.core.inode;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * An inode as the inode tree stores it: the value (a fixed {@link #SIZE} bytes) under the key
 * "inode number, big-endian". Integers little-endian.
 *
 * <pre>
 * offset size field
 *      0    4 mode: file type (S_IFMT bits) and permission bits, as stat(2)'s st_mode
 *      4    4 uid                 8 4 gid
 *     12    4 nlink              16 8 size in bytes
 *     24    8 rdev (device nodes: major &lt;&lt; 32 | minor; else 0)
 *     32   12 atime  (i64 seconds, u32 nanoseconds)
 *     44   12 mtime  56 12 ctime  68 12 crtime (birth time)
 *     80    8 generation (with the inode number: the NFS-style file handle)
 *     88    4 flags (see the FLAG_ constants)
 *     92    4 inline length: bytes of inline data (a short symlink target), 0..136
 *     96    8 extent-map root block (0: no extent map yet)
 *    104    8 blocks: 4 KiB blocks charged to the inode (data and extent-map nodes), for st_blocks
 *    112    8 parent: a directory's parent directory (what ".." names); 0 for other types
 *    120  136 inline data
 * </pre>
 */
public record InodeRecord(
        int mode,
        int uid,
        int gid,
        int nlink,
        long size,
        long rdev,
        Timespec atime,
        Timespec mtime,
        Timespec ctime,
        Timespec crtime,
        long generation,
        int flags,
        long extentRoot,
        long blocks,
        long parent,
        byte[] inline) {

    public static final int SIZE = 256;
    public static final int INLINE_CAPACITY = 136;

    // File types, as in <sys/stat.h>.
    public static final int S_IFMT = 0xF000;
    public static final int S_IFSOCK = 0xC000;
    public static final int S_IFLNK = 0xA000;
    public static final int S_IFREG = 0x8000;
    public static final int S_IFBLK = 0x6000;
    public static final int S_IFDIR = 0x4000;
    public static final int S_IFCHR = 0x2000;
    public static final int S_IFIFO = 0x1000;

    /** The inode is on the orphan list: unlinked while open, freed at last close or replay. */
    public static final int FLAG_ORPHAN = 1;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public InodeRecord {
        inline = inline == null ? new byte[0] : inline;
        if (inline.length > INLINE_CAPACITY) {
            throw new IllegalArgumentException("inline data of " + inline.length + " bytes exceeds " + INLINE_CAPACITY);
        }
    }

    public int type() {
        return mode & S_IFMT;
    }

    public boolean isDirectory() {
        return type() == S_IFDIR;
    }

    public boolean isRegular() {
        return type() == S_IFREG;
    }

    public boolean isSymlink() {
        return type() == S_IFLNK;
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** A mutable copy for building the next version of a record. */
    public static final class Builder {
        public int mode, uid, gid, nlink, flags;
        public long size, rdev, generation, extentRoot, blocks, parent;
        public Timespec atime, mtime, ctime, crtime;
        public byte[] inline;

        Builder(InodeRecord r) {
            mode = r.mode; uid = r.uid; gid = r.gid; nlink = r.nlink; size = r.size; rdev = r.rdev;
            atime = r.atime; mtime = r.mtime; ctime = r.ctime; crtime = r.crtime; generation = r.generation;
            flags = r.flags; extentRoot = r.extentRoot; blocks = r.blocks; parent = r.parent; inline = r.inline;
        }

        public InodeRecord build() {
            return new InodeRecord(mode, uid, gid, nlink, size, rdev, atime, mtime, ctime, crtime, generation, flags,
                    extentRoot, blocks, parent, inline);
        }
    }

    public byte[] encode() {
        byte[] out = new byte[SIZE];
        MemorySegment s = MemorySegment.ofArray(out);
        s.set(U32, 0, mode);
        s.set(U32, 4, uid);
        s.set(U32, 8, gid);
        s.set(U32, 12, nlink);
        s.set(U64, 16, size);
        s.set(U64, 24, rdev);
        putTime(s, 32, atime);
        putTime(s, 44, mtime);
        putTime(s, 56, ctime);
        putTime(s, 68, crtime);
        s.set(U64, 80, generation);
        s.set(U32, 88, flags);
        s.set(U32, 92, inline.length);
        s.set(U64, 96, extentRoot);
        s.set(U64, 104, blocks);
        s.set(U64, 112, parent);
        System.arraycopy(inline, 0, out, 120, inline.length);
        return out;
    }

    /** Decodes a stored value; {@code ino} only names the inode in an error. */
    public static InodeRecord decode(byte[] value, long ino) {
        if (value.length != SIZE) {
            throw new IllegalArgumentException("inode " + ino + ": record of " + value.length + " bytes");
        }
        MemorySegment s = MemorySegment.ofArray(value);
        int inlineLength = s.get(U32, 92);
        if (inlineLength < 0 || inlineLength > INLINE_CAPACITY) {
            throw new IllegalArgumentException("inode " + ino + ": inline length " + inlineLength);
        }
        return new InodeRecord(s.get(U32, 0), s.get(U32, 4), s.get(U32, 8), s.get(U32, 12), s.get(U64, 16),
                s.get(U64, 24), time(s, 32), time(s, 44), time(s, 56), time(s, 68), s.get(U64, 80), s.get(U32, 88),
                s.get(U64, 96), s.get(U64, 104), s.get(U64, 112), Arrays.copyOfRange(value, 120, 120 + inlineLength));
    }

    private static void putTime(MemorySegment s, long offset, Timespec t) {
        s.set(U64, offset, t.seconds());
        s.set(U32, offset + 8, t.nanos());
    }

    private static Timespec time(MemorySegment s, long offset) {
        int nanos = s.get(U32, offset + 8);
        return new Timespec(s.get(U64, offset), Math.floorMod(nanos, 1_000_000_000));
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof InodeRecord r && Arrays.equals(encode(), r.encode());
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encode());
    }
}
