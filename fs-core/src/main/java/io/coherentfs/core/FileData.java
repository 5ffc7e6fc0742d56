package io.coherentfs.core;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.extent.ExtentMapper;
import io.coherentfs.core.extent.ExtentMapper.Intent;
import io.coherentfs.core.extent.Mapping;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The device side of file data that bypasses the page cache: fallocate's allocation, punching
 * and edge zeroing, SEEK_DATA/SEEK_HOLE over the extent map, and symlink blocks — each a loop of
 * {@link ExtentMapper#begin}, data movement, {@link ExtentMapper#end} (DESIGN.md section 2).
 * Callers write back the range's cached data first and drop its pages after, so the device is
 * the whole truth while these run.
 *
 * <p>Callers hold the inode's rwsem: shared to read or seek, exclusive to zero, punch or allocate.
 */
final class FileData {
    private static final int BLOCK = CoherentFs.BLOCK;
    /** Most blocks moved per mapping step: 1 MiB. */
    static final int CHUNK_BLOCKS = 256;
    /** Most blocks fallocate reserves per transaction. */
    static final long FALLOCATE_STEP_BLOCKS = 32_768;
    static final long UNBOUNDED = Long.MAX_VALUE / 2;


    private final CoherentFs fs;
    private final BlockDevice device;
    private final AlignedBufferPool pool;

    FileData(CoherentFs fs, BlockDevice device, AlignedBufferPool pool) {
        this.fs = fs;
        this.device = device;
        this.pool = pool;
    }

    /**
     * The mapper of {@code ino} inside a transaction. The extent map is created only when a
     * mapping must be recorded — after the data blocks were allocated, so that ENOSPC comes
     * before anything changed.
     */
    private ExtentMapper mapperForChange(MetaOp op, BTree inodes, long ino) throws IOException {
        return new ExtentMapper(fs.extentsForChange(op, inodes, ino, false), fs.extentSequence(ino),
                () -> fs.extentsForChange(op, inodes, ino, true));
    }

    // ---- read ----------------------------------------------------------------------------------

    /** Reads up to {@code dst.byteSize()} bytes at {@code offset} of a file of {@code size} bytes. */
    int read(long ino, long offset, MemorySegment dst, long size) throws IOException {
        if (offset >= size) {
            return 0;
        }
        long length = Math.min(dst.byteSize(), size - offset);
        long done = 0;
        try (AlignedBuffer bounce = pool.allocate((long) CHUNK_BLOCKS * BLOCK)) {
            while (done < length) {
                long pos = offset + done;
                long lblk = pos / BLOCK;
                int inBlock = (int) (pos % BLOCK);
                long wanted = Math.min(CHUNK_BLOCKS, (inBlock + (length - done) + BLOCK - 1) / BLOCK);
                Mapping m = fs.mapForRead(ino, lblk, wanted);
                long n = Math.min(length - done, m.blocks() * BLOCK - inBlock);
                if (m.readsAsZeros()) {
                    dst.asSlice(done, n).fill((byte) 0);
                } else {
                    MemorySegment buf = bounce.segment().asSlice(0, m.blocks() * BLOCK);
                    device.read(m.physical() * BLOCK, buf);
                    MemorySegment.copy(buf, inBlock, dst, done, n);
                }
                done += n;
            }
        }
        return (int) length;
    }

    // ---- zeroing, punching, allocating ---------------------------------------------------------

    /** Zeroes bytes {@code [pos, pos + length)} inside one block, on disk, if the block holds data. */
    void zeroWithinBlock(long ino, long pos, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        Mapping m = fs.mapForRead(ino, pos / BLOCK, 1);
        if (m.readsAsZeros()) {
            return;
        }
        try (AlignedBuffer buf = pool.allocate(BLOCK)) {
            device.read(m.physical() * BLOCK, buf.segment());
            buf.segment().asSlice(pos % BLOCK, length).fill((byte) 0);
            device.write(m.physical() * BLOCK, buf.segment());
        }
    }

    /**
     * Zeroes the partial blocks at both ends of {@code [offset, end)} on disk and returns the
     * whole blocks inside it as {@code [first, last)}.
     */
    private long[] zeroEdges(long ino, long offset, long end) throws IOException {
        long first = (offset + BLOCK - 1) / BLOCK;
        long last = end / BLOCK;
        if (first > last) {  // inside a single block
            zeroWithinBlock(ino, offset, end - offset);
            return new long[] {first, first};
        }
        zeroWithinBlock(ino, offset, first * BLOCK - offset);
        zeroWithinBlock(ino, last * BLOCK, end - last * BLOCK);
        return new long[] {first, last};
    }

    /** Unmaps and frees the blocks {@code [first, last)}, a few extents per transaction. */
    void punchBlocks(long ino, long first, long last) throws IOException {
        if (first >= last) {
            return;
        }
        while (true) {
            boolean more = fs.change(CoherentFs.NAMESPACE_CREDITS, MetaStore.Space.FREES, op -> {
                BTree inodes = fs.inodes(op);
                ExtentMap map = fs.extentsForChange(op, inodes, ino, false);
                if (map == null) {
                    return false;
                }
                List<long[]> freed = map.removeRange(first, last, CoherentFs.EXTENTS_PER_TRUNCATE_STEP);
                fs.freeRuns(op, inodes, ino, freed);
                return !freed.isEmpty();
            });
            if (!more) {
                return;
            }
        }
    }

    /** Allocates unwritten blocks over every hole in {@code [first, last)}. */
    private void allocateUnwritten(long ino, long first, long last) throws IOException {
        long lblk = first;
        while (lblk < last) {
            lblk = mapAllocatingUnwritten(ino, lblk, Math.min(FALLOCATE_STEP_BLOCKS, last - lblk)).end();
        }
    }

    /**
     * In a transaction of its own: the mapping of {@code at} (at most {@code maxBlocks} long),
     * after allocating a hole there as unwritten extents charged to the inode (fallocate, and
     * direct writes into holes). ENOSPC leaves nothing changed.
     */
    Mapping mapAllocatingUnwritten(long ino, long at, long maxBlocks) throws IOException {
        return fs.change(CoherentFs.NAMESPACE_CREDITS, op -> {
            BTree inodes = fs.inodes(op);
            ExtentMapper mapper = mapperForChange(op, inodes, ino);
            Mapping m = mapper.begin(op, at, maxBlocks, Intent.READ);
            if (m.type() == Mapping.Type.HOLE) {
                m = mapper.begin(op, at, m.blocks(), Intent.ALLOCATE_UNWRITTEN);
                fs.bumpExtentSequence(ino);
                InodeRecord.Builder b = fs.load(inodes, ino).toBuilder();
                b.blocks += m.blocks();
                fs.save(inodes, ino, b.build());
            }
            return m;
        });
    }

    /**
     * fallocate(2) on a regular file of {@code size} bytes: the default mode and KEEP_SIZE
     * allocate unwritten blocks, PUNCH_HOLE (with KEEP_SIZE, as Linux requires) frees, ZERO_RANGE
     * zeroes; every other mode is EOPNOTSUPP. Returns the new size.
     */
    long fallocate(long ino, int mode, long offset, long length, long size) throws IOException {
        int known = Vfs.FALLOC_FL_KEEP_SIZE | Vfs.FALLOC_FL_PUNCH_HOLE | Vfs.FALLOC_FL_ZERO_RANGE;
        if ((mode & ~known) != 0) {
            throw new ErrnoException.NotSupportedException(Errno.EOPNOTSUPP.code(), "fallocate",
                    "mode 0x" + Integer.toHexString(mode) + " is not supported");
        }
        boolean punch = (mode & Vfs.FALLOC_FL_PUNCH_HOLE) != 0;
        boolean zero = (mode & Vfs.FALLOC_FL_ZERO_RANGE) != 0;
        boolean keepSize = (mode & Vfs.FALLOC_FL_KEEP_SIZE) != 0;
        if (punch && (zero || !keepSize)) {
            throw new ErrnoException.NotSupportedException(Errno.EOPNOTSUPP.code(), "fallocate",
                    "PUNCH_HOLE goes with KEEP_SIZE only");
        }
        if (offset < 0 || length <= 0) {
            throw new ErrnoException.InvalidArgumentException("fallocate", "offset " + offset + ", length " + length);
        }
        long end = offset + length;
        if (end > CoherentFs.MAX_FILE_SIZE || end < 0) {
            throw new ErrnoException(Errno.EFBIG, "fallocate", "range ends past the largest file");
        }
        if (punch || zero) {
            long[] whole = zeroEdges(ino, offset, end);
            punchBlocks(ino, whole[0], whole[1]);
            if (punch) {
                return size;
            }
            allocateUnwritten(ino, whole[0], whole[1]);
        } else {
            allocateUnwritten(ino, offset / BLOCK, (end + BLOCK - 1) / BLOCK);
        }
        return keepSize ? size : Math.max(size, end);
    }

    // ---- seek ----------------------------------------------------------------------------------

    /** lseek(2) SEEK_DATA / SEEK_HOLE in a file of {@code size} bytes. Unwritten blocks count as holes. */
    long seek(long ino, long offset, int whence, long size) throws IOException {
        if (offset < 0 || offset >= size) {
            throw new ErrnoException(Errno.ENXIO, "lseek", "offset " + offset + " is not inside the file (size " + size + ")");
        }
        long lblk = offset / BLOCK;
        while ((long) lblk * BLOCK < size) {
            Mapping m = fs.mapForRead(ino, lblk, UNBOUNDED);
            boolean data = !m.readsAsZeros();
            if (whence == Vfs.SEEK_DATA && data) {
                return Math.max(offset, lblk * BLOCK);
            }
            if (whence == Vfs.SEEK_HOLE && !data) {
                return Math.min(size, Math.max(offset, lblk * BLOCK));
            }
            if (m.blocks() >= UNBOUNDED / BLOCK) {
                break;
            }
            lblk = m.end();
        }
        if (whence == Vfs.SEEK_DATA) {
            throw new ErrnoException(Errno.ENXIO, "lseek", "no data at or after " + offset);
        }
        return size;
    }

    // ---- symlinks ------------------------------------------------------------------------------

    /** Stores a symlink target too long to be inline in a data block of its own. */
    void writeSymlinkBlock(MetaOp op, BTree inodes, long ino, byte[] target) throws IOException {
        ExtentMap map = fs.extentsForChange(op, inodes, ino, true);
        Extent got = op.allocateData(0, 1);
        try (AlignedBuffer buf = pool.allocate(BLOCK)) {
            buf.segment().fill((byte) 0);
            MemorySegment.copy(MemorySegment.ofArray(target), 0, buf.segment(), 0, target.length);
            device.write(got.start() * BLOCK, buf.segment());
        }
        map.insert(new ExtentMap.Extent(0, got.start(), 1, 0));
        InodeRecord.Builder b = fs.load(inodes, ino).toBuilder();
        b.blocks += 1;
        fs.save(inodes, ino, b.build());
    }
}
