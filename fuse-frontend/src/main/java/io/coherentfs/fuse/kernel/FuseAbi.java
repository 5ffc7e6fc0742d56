package io.coherentfs.fuse.kernel;

/**
 * The FUSE wire protocol as far as coherentfs speaks it: opcodes, flag bits, and the byte
 * offsets and sizes of the structs, all from the kernel's include/uapi/linux/fuse.h (x86-64 and
 * arm64 little-endian; every struct is padded to 8 bytes by the header itself). The minor
 * version that introduced a field is noted where it matters: the layouts below are those of
 * every minor from {@link #MIN_MINOR} up, so the reply sizes do not depend on the negotiated
 * minor in that range.
 */
public final class FuseAbi {
    private FuseAbi() {}

    public static final int KERNEL_MAJOR = 7;
    /**
     * The newest minor we speak: 7.39 added FUSE_DIRECT_IO_ALLOW_MMAP; nothing we use changed
     * a struct after 7.23 (fuse_init_out's final size) except fuse_in_header.total_extlen
     * (7.38, zero unless extensions were negotiated, which we never do).
     */
    public static final int OUR_MINOR = 39;
    /** The oldest kernel minor we accept: 7.31 (Linux 5.7); 7.28 brought max_pages. */
    public static final int MIN_MINOR = 31;

    /** The root directory's node id, FUSE_ROOT_ID; also the engine's {@code Vfs.ROOT}. */
    public static final long ROOT_ID = 1;

    /** The read buffer the kernel requires at least (FUSE_MIN_READ_BUFFER). */
    public static final int MIN_READ_BUFFER = 8192;

    // ---- opcodes (enum fuse_opcode) -----------------------------------------------------------
    public static final int LOOKUP = 1;
    public static final int FORGET = 2;
    public static final int GETATTR = 3;
    public static final int SETATTR = 4;
    public static final int READLINK = 5;
    public static final int SYMLINK = 6;
    public static final int MKNOD = 8;
    public static final int MKDIR = 9;
    public static final int UNLINK = 10;
    public static final int RMDIR = 11;
    public static final int RENAME = 12;
    public static final int LINK = 13;
    public static final int OPEN = 14;
    public static final int READ = 15;
    public static final int WRITE = 16;
    public static final int STATFS = 17;
    public static final int RELEASE = 18;
    public static final int FSYNC = 20;
    public static final int SETXATTR = 21;
    public static final int GETXATTR = 22;
    public static final int LISTXATTR = 23;
    public static final int REMOVEXATTR = 24;
    public static final int FLUSH = 25;
    public static final int INIT = 26;
    public static final int OPENDIR = 27;
    public static final int READDIR = 28;
    public static final int RELEASEDIR = 29;
    public static final int FSYNCDIR = 30;
    public static final int GETLK = 31;
    public static final int SETLK = 32;
    public static final int SETLKW = 33;
    public static final int ACCESS = 34;
    public static final int CREATE = 35;
    public static final int INTERRUPT = 36;
    public static final int BMAP = 37;
    public static final int DESTROY = 38;
    public static final int IOCTL = 39;
    public static final int POLL = 40;
    public static final int NOTIFY_REPLY = 41;
    public static final int BATCH_FORGET = 42;
    public static final int FALLOCATE = 43;
    public static final int READDIRPLUS = 44;
    public static final int RENAME2 = 45;
    public static final int LSEEK = 46;
    public static final int COPY_FILE_RANGE = 47;
    public static final int SYNCFS = 50;
    public static final int TMPFILE = 51;

    // ---- notifications (enum fuse_notify_code): sent with unique 0, the code in error ---------
    public static final int NOTIFY_INVAL_INODE = 2;
    public static final int NOTIFY_STORE = 4;

    // ---- INIT flags (fuse_init_in/out.flags; bits 32..63 travel in flags2) --------------------
    public static final long ASYNC_READ = 1L << 0;
    public static final long ATOMIC_O_TRUNC = 1L << 3;
    public static final long EXPORT_SUPPORT = 1L << 4;
    public static final long BIG_WRITES = 1L << 5;
    public static final long DO_READDIRPLUS = 1L << 13;
    public static final long ASYNC_DIO = 1L << 15;
    public static final long WRITEBACK_CACHE = 1L << 16;
    public static final long PARALLEL_DIROPS = 1L << 18;
    public static final long MAX_PAGES = 1L << 22;
    public static final long SETXATTR_EXT = 1L << 29;
    public static final long INIT_EXT = 1L << 30;
    /** 7.39: shared mmap allowed on FOPEN_DIRECT_IO files. */
    public static final long DIRECT_IO_ALLOW_MMAP = 1L << 36;

    // ---- FOPEN_* (fuse_open_out.open_flags) ----------------------------------------------------
    public static final int FOPEN_DIRECT_IO = 1;
    public static final int FOPEN_KEEP_CACHE = 1 << 1;
    /** 7.38: concurrent direct writes to one inode (needs FOPEN_DIRECT_IO). */
    public static final int FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;

    // ---- FATTR_* (fuse_setattr_in.valid) -------------------------------------------------------
    public static final int FATTR_MODE = 1;
    public static final int FATTR_UID = 1 << 1;
    public static final int FATTR_GID = 1 << 2;
    public static final int FATTR_SIZE = 1 << 3;
    public static final int FATTR_ATIME = 1 << 4;
    public static final int FATTR_MTIME = 1 << 5;
    public static final int FATTR_FH = 1 << 6;
    public static final int FATTR_ATIME_NOW = 1 << 7;
    public static final int FATTR_MTIME_NOW = 1 << 8;
    public static final int FATTR_CTIME = 1 << 10;

    public static final int GETATTR_FH = 1;
    public static final int FSYNC_FDATASYNC = 1;
    /** fuse_write_in.write_flags: a write-back of the kernel's page cache (mmap), fh guessed. */
    public static final int WRITE_CACHE = 1;

    // renameat2(2) flags as FUSE_RENAME2 carries them.
    public static final int RENAME_NOREPLACE = 1;
    public static final int RENAME_EXCHANGE = 2;

    // ---- struct fuse_in_header (40 bytes) ------------------------------------------------------
    public static final int IN_HEADER_BYTES = 40;
    public static final int IN_LEN = 0;
    public static final int IN_OPCODE = 4;
    public static final int IN_UNIQUE = 8;
    public static final int IN_NODEID = 16;
    public static final int IN_UID = 24;
    public static final int IN_GID = 28;
    public static final int IN_PID = 32;
    public static final int IN_TOTAL_EXTLEN = 36;

    // ---- struct fuse_out_header (16 bytes) -----------------------------------------------------
    public static final int OUT_HEADER_BYTES = 16;
    public static final int OUT_LEN = 0;
    public static final int OUT_ERROR = 4;
    public static final int OUT_UNIQUE = 8;

    // ---- struct fuse_init_in: 16 bytes before 7.36, 64 from 7.36 (flags2 at 16) ----------------
    public static final int INIT_IN_MAJOR = 0;
    public static final int INIT_IN_MINOR = 4;
    public static final int INIT_IN_MAX_READAHEAD = 8;
    public static final int INIT_IN_FLAGS = 12;
    public static final int INIT_IN_FLAGS2 = 16;
    public static final int INIT_IN_BYTES_V36 = 64;

    // ---- struct fuse_init_out (64 bytes since 7.23) --------------------------------------------
    public static final int INIT_OUT_BYTES = 64;
    public static final int INIT_OUT_MAJOR = 0;
    public static final int INIT_OUT_MINOR = 4;
    public static final int INIT_OUT_MAX_READAHEAD = 8;
    public static final int INIT_OUT_FLAGS = 12;
    public static final int INIT_OUT_MAX_BACKGROUND = 16;
    public static final int INIT_OUT_CONGESTION_THRESHOLD = 18;
    public static final int INIT_OUT_MAX_WRITE = 20;
    public static final int INIT_OUT_TIME_GRAN = 24;
    public static final int INIT_OUT_MAX_PAGES = 28;
    public static final int INIT_OUT_FLAGS2 = 32;

    // ---- struct fuse_attr (88 bytes) -----------------------------------------------------------
    public static final int ATTR_BYTES = 88;
    public static final int ATTR_INO = 0;
    public static final int ATTR_SIZE = 8;
    public static final int ATTR_BLOCKS = 16;
    public static final int ATTR_ATIME = 24;
    public static final int ATTR_MTIME = 32;
    public static final int ATTR_CTIME = 40;
    public static final int ATTR_ATIMENSEC = 48;
    public static final int ATTR_MTIMENSEC = 52;
    public static final int ATTR_CTIMENSEC = 56;
    public static final int ATTR_MODE = 60;
    public static final int ATTR_NLINK = 64;
    public static final int ATTR_UID = 68;
    public static final int ATTR_GID = 72;
    public static final int ATTR_RDEV = 76;
    public static final int ATTR_BLKSIZE = 80;
    public static final int ATTR_FLAGS = 84;

    // ---- struct fuse_entry_out (128 bytes; the 120-byte compat size is for minors < 9) ---------
    public static final int ENTRY_OUT_BYTES = 40 + ATTR_BYTES;
    public static final int ENTRY_NODEID = 0;
    public static final int ENTRY_GENERATION = 8;
    public static final int ENTRY_VALID = 16;
    public static final int ENTRY_ATTR_VALID = 24;
    public static final int ENTRY_VALID_NSEC = 32;
    public static final int ENTRY_ATTR_VALID_NSEC = 36;
    public static final int ENTRY_ATTR = 40;

    // ---- struct fuse_attr_out (104 bytes) ------------------------------------------------------
    public static final int ATTR_OUT_BYTES = 16 + ATTR_BYTES;
    public static final int ATTR_OUT_VALID = 0;
    public static final int ATTR_OUT_VALID_NSEC = 8;
    public static final int ATTR_OUT_ATTR = 16;

    // ---- struct fuse_open_out (16 bytes; 7.40 named the padding backing_id) --------------------
    public static final int OPEN_OUT_BYTES = 16;
    public static final int OPEN_OUT_FH = 0;
    public static final int OPEN_OUT_FLAGS = 8;

    // ---- request bodies ------------------------------------------------------------------------
    /** fuse_getattr_in {u32 getattr_flags, u32 dummy, u64 fh}. */
    public static final int GETATTR_IN_FLAGS = 0;
    public static final int GETATTR_IN_FH = 8;

    /** fuse_setattr_in (88 bytes). */
    public static final int SETATTR_IN_BYTES = 88;
    public static final int SETATTR_VALID = 0;
    public static final int SETATTR_FH = 8;
    public static final int SETATTR_SIZE = 16;
    public static final int SETATTR_ATIME = 32;
    public static final int SETATTR_MTIME = 40;
    public static final int SETATTR_CTIME = 48;
    public static final int SETATTR_ATIMENSEC = 56;
    public static final int SETATTR_MTIMENSEC = 60;
    public static final int SETATTR_CTIMENSEC = 64;
    public static final int SETATTR_MODE = 68;
    public static final int SETATTR_UID = 76;
    public static final int SETATTR_GID = 80;

    /** fuse_mknod_in {mode, rdev, umask, padding} (16 bytes since 7.12), then the name. */
    public static final int MKNOD_IN_BYTES = 16;
    /** fuse_mkdir_in {mode, umask}, then the name. */
    public static final int MKDIR_IN_BYTES = 8;
    /** fuse_rename_in {u64 newdir}, then old and new name. */
    public static final int RENAME_IN_BYTES = 8;
    /** fuse_rename2_in {u64 newdir, u32 flags, u32 padding}, then the names. */
    public static final int RENAME2_IN_BYTES = 16;
    /** fuse_link_in {u64 oldnodeid}, then the new name. */
    public static final int LINK_IN_BYTES = 8;
    /** fuse_open_in {u32 flags, u32 open_flags}. */
    public static final int OPEN_IN_BYTES = 8;
    /** fuse_create_in {flags, mode, umask, open_flags}, then the name. */
    public static final int CREATE_IN_BYTES = 16;
    /** fuse_release_in {u64 fh, u32 flags, u32 release_flags, u64 lock_owner}. */
    public static final int RELEASE_IN_BYTES = 24;
    /** fuse_flush_in {u64 fh, ...}. */
    public static final int FLUSH_IN_BYTES = 24;

    /** fuse_read_in (40 bytes since 7.9). */
    public static final int READ_IN_BYTES = 40;
    public static final int READ_FH = 0;
    public static final int READ_OFFSET = 8;
    public static final int READ_SIZE = 16;
    public static final int READ_FLAGS = 32;

    /** fuse_write_in (40 bytes since 7.9), then the data. */
    public static final int WRITE_IN_BYTES = 40;
    public static final int WRITE_FH = 0;
    public static final int WRITE_OFFSET = 8;
    public static final int WRITE_SIZE = 16;
    public static final int WRITE_WRITE_FLAGS = 20;
    public static final int WRITE_FLAGS = 32;
    public static final int WRITE_OUT_BYTES = 8;

    /** Where a WRITE's data starts in the request: in_header + fuse_write_in. */
    public static final int WRITE_PAYLOAD_OFFSET = IN_HEADER_BYTES + WRITE_IN_BYTES;

    /** fuse_fsync_in {u64 fh, u32 fsync_flags, u32 padding}. */
    public static final int FSYNC_IN_BYTES = 16;

    /** fuse_setxattr_in without FUSE_SETXATTR_EXT: {u32 size, u32 flags} (FUSE_COMPAT_SETXATTR_IN_SIZE). */
    public static final int SETXATTR_IN_COMPAT_BYTES = 8;
    /** fuse_getxattr_in {u32 size, u32 padding}; also LISTXATTR's. */
    public static final int GETXATTR_IN_BYTES = 8;
    public static final int GETXATTR_OUT_BYTES = 8;

    /** fuse_kstatfs / fuse_statfs_out (80 bytes). */
    public static final int STATFS_OUT_BYTES = 80;

    /** fuse_fallocate_in {u64 fh, u64 offset, u64 length, u32 mode, u32 padding}. */
    public static final int FALLOCATE_IN_BYTES = 32;
    /** fuse_lseek_in {u64 fh, u64 offset, u32 whence, u32 padding}; fuse_lseek_out {u64 offset}. */
    public static final int LSEEK_IN_BYTES = 24;
    public static final int LSEEK_OUT_BYTES = 8;

    /** fuse_forget_in {u64 nlookup}. */
    public static final int FORGET_IN_BYTES = 8;
    /** fuse_batch_forget_in {u32 count, u32 dummy}, then count fuse_forget_one {u64 nodeid, u64 nlookup}. */
    public static final int BATCH_FORGET_IN_BYTES = 8;
    public static final int FORGET_ONE_BYTES = 16;

    /** fuse_dirent {u64 ino, u64 off, u32 namelen, u32 type, char name[]}, padded to 8. */
    public static final int DIRENT_NAME_OFFSET = 24;

    /** fuse_notify_inval_inode_out {u64 ino, s64 off, s64 len}. */
    public static final int NOTIFY_INVAL_INODE_BYTES = 24;

    /** fuse_notify_store_out {u64 nodeid, u64 offset, u32 size, u32 padding}, then size bytes of data. */
    public static final int NOTIFY_STORE_BYTES = 24;

    /** FUSE_REC_ALIGN / FUSE_DIRENT_SIZE: a dirent record of a name of {@code nameLength} bytes. */
    public static int direntSize(int nameLength) {
        return (DIRENT_NAME_OFFSET + nameLength + 7) & ~7;
    }
}
