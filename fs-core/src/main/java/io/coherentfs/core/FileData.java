package io.coherentfs.core;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.meta.MetaOp;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * File data, moved straight between the caller's memory and the device through aligned bounce
 * buffers, one extent mapping at a time (the iomap shape of DESIGN.md section 2: map a range, move
 * the data, record the mapping). The page cache (issue 4) takes the place of the bounce buffers.
 *
 * <p>Callers hold the inode's rwsem: shared to read, exclusive to write or zero. A write maps and
 * allocates in a transaction and writes the data before the new extent joins it, so no commit
 * ever points at blocks whose data has not been written (ordered data).
 */
final class FileData {
    private static final int BLOCK = CoherentFs.BLOCK;
    /** Most blocks moved per mapping step: 1 MiB. */
    static final int CHUNK_BLOCKS = 256;

    private final CoherentFs fs;
    private final BlockDevice device;
    private final AlignedBufferPool pool;

    FileData(CoherentFs fs, BlockDevice device, AlignedBufferPool pool) {
        this.fs = fs;
        this.device = device;
        this.pool = pool;
    }

    /** What backs logical block {@code lblk}: an extent, or a hole up to the next extent. */
    private record Mapping(ExtentMap.Extent extent, long holeEnd) {}

    private Mapping mapForRead(long ino, long lblk) throws IOException {
        return fs.look(store -> {
            ExtentMap map = fs.extentsForLook(store, ino);
            if (map == null) {
                return new Mapping(null, Long.MAX_VALUE);
            }
            ExtentMap.Extent e = map.find(lblk);
            if (e != null) {
                return new Mapping(e, 0);
            }
            ExtentMap.Extent next = map.next(lblk);
            return new Mapping(null, next == null ? Long.MAX_VALUE : next.logical());
        });
    }

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
                Mapping m = mapForRead(ino, lblk);
                long n;
                if (m.extent() == null || m.extent().unwritten()) {
                    long end = m.extent() == null ? m.holeEnd() : m.extent().end();
                    n = Math.min(length - done, end == Long.MAX_VALUE ? Long.MAX_VALUE : end * BLOCK - pos);
                    dst.asSlice(done, n).fill((byte) 0);
                } else {
                    ExtentMap.Extent e = m.extent();
                    long blocks = Math.min(Math.min(e.end() - lblk, CHUNK_BLOCKS),
                            (inBlock + (length - done) + BLOCK - 1) / BLOCK);
                    MemorySegment buf = bounce.segment().asSlice(0, blocks * BLOCK);
                    device.read((e.physical() + lblk - e.logical()) * BLOCK, buf);
                    n = Math.min(length - done, blocks * BLOCK - inBlock);
                    MemorySegment.copy(buf, inBlock, dst, done, n);
                }
                done += n;
            }
        }
        return (int) length;
    }

    /** Writes all of {@code src} at {@code pos}, allocating over holes; updates size and times. */
    void write(long ino, long pos, MemorySegment src) throws IOException {
        long done = 0;
        long length = src.byteSize();
        try (AlignedBuffer bounce = pool.allocate((long) CHUNK_BLOCKS * BLOCK)) {
            while (done < length) {
                long at = pos + done;
                long offsetInSource = done;
                long n = fs.change(CoherentFs.NAMESPACE_CREDITS,
                        op -> writeStep(op, ino, at, src.asSlice(offsetInSource), bounce.segment()));
                done += n;
            }
        }
    }

    /** Maps (allocating over a hole) and writes one step of at most {@link #CHUNK_BLOCKS} blocks. */
    private long writeStep(MetaOp op, long ino, long pos, MemorySegment src, MemorySegment bounce) throws IOException {
        BTree inodes = fs.inodes(op);
        ExtentMap map = fs.extentsForChange(op, inodes, ino, true);
        long lblk = pos / BLOCK;
        int inBlock = (int) (pos % BLOCK);
        long wantBlocks = Math.min(CHUNK_BLOCKS, (inBlock + src.byteSize() + BLOCK - 1) / BLOCK);
        ExtentMap.Extent e = map.find(lblk);
        long physical;
        long blocks;
        boolean fresh;
        if (e != null) {
            physical = e.physical() + (lblk - e.logical());
            blocks = Math.min(wantBlocks, e.end() - lblk);
            fresh = e.unwritten();
        } else {
            ExtentMap.Extent next = map.next(lblk);
            long holeBlocks = next == null ? wantBlocks : Math.min(wantBlocks, next.logical() - lblk);
            ExtentMap.Extent before = lblk == 0 ? null : map.find(lblk - 1);
            long goal = before == null ? 0 : before.physical() + (lblk - 1 - before.logical()) + 1;
            Extent got = op.allocateData(goal, holeBlocks);
            physical = got.start();
            blocks = got.length();
            fresh = true;
        }
        long n = Math.min(src.byteSize(), blocks * BLOCK - inBlock);
        MemorySegment buf = bounce.asSlice(0, blocks * BLOCK);
        long end = inBlock + n;
        boolean partialHead = inBlock != 0;
        boolean partialTail = end % BLOCK != 0;
        if (fresh) {
            if (partialHead) {
                buf.asSlice(0, BLOCK).fill((byte) 0);
            }
            if (partialTail) {
                buf.asSlice(end / BLOCK * BLOCK, BLOCK).fill((byte) 0);
            }
        } else {
            if (partialHead) {
                device.read(physical * BLOCK, buf.asSlice(0, BLOCK));
            }
            if (partialTail && !(partialHead && end <= BLOCK)) {
                long last = end / BLOCK;
                device.read((physical + last) * BLOCK, buf.asSlice(last * BLOCK, BLOCK));
            }
        }
        MemorySegment.copy(src, 0, buf, inBlock, n);
        // Ordered data: the blocks are written before the extent that points at them is logged.
        device.write(physical * BLOCK, buf);
        if (e == null) {
            map.insert(new ExtentMap.Extent(lblk, physical, blocks, 0));
        }
        InodeRecord.Builder b = fs.load(inodes, ino).toBuilder();  // after insert: it may have moved the map's root
        if (e == null) {
            b.blocks += blocks;
        }
        Timespec t = Timespec.now();
        b.size = Math.max(b.size, pos + n);
        b.mtime = t;
        b.ctime = t;
        fs.save(inodes, ino, b.build());
        return n;
    }

    /** Zeroes the bytes of the block holding {@code size} from {@code size} on (before a shrink). */
    void zeroTail(long ino, long size) throws IOException {
        int inBlock = (int) (size % BLOCK);
        if (inBlock == 0) {
            return;
        }
        Mapping m = mapForRead(ino, size / BLOCK);
        if (m.extent() == null || m.extent().unwritten()) {
            return;
        }
        ExtentMap.Extent e = m.extent();
        long at = (e.physical() + size / BLOCK - e.logical()) * BLOCK;
        try (AlignedBuffer buf = pool.allocate(BLOCK)) {
            device.read(at, buf.segment());
            buf.segment().asSlice(inBlock).fill((byte) 0);
            device.write(at, buf.segment());
        }
    }

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
