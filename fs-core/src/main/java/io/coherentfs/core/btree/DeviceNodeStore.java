package io.coherentfs.core.btree;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A {@link NodeStore} straight over a {@link BlockDevice}, for tests and tools (mkfs, fsck, dump):
 * a small write-back cache of 4 KiB blocks in aligned buffers, and a bump + free-list allocator
 * over a region of the device. It is <b>not crash-consistent</b>: blocks reach the device when
 * evicted or at {@link #flush}, in no particular order, and the allocator state only at flush.
 * Crash safety is the journal-backed store's job; this one gives back exactly what was flushed
 * after a clean close and reopen.
 *
 * <h2>Region layout</h2>
 * The store owns blocks {@code [first, first + count)} of the device (block = 4096 bytes at
 * offset {@code block * 4096}). Block {@code first} is its header; nodes live in the rest. Integers
 * are little-endian; like every metadata block, both kinds carry a magic at 0 and a CRC32C at 4
 * over the rest of the block ({@link NodeCodec#computeChecksum}).
 * <pre>
 * header block (first)                free block (on the free list)
 *   0  4  magic "CFNS"                  0  4  magic "CFFR"
 *   4  4  crc32c                        4  4  crc32c
 *   8  8  first block                   8  8  next free block, 0 = end of list
 *  16  8  block count                  16  8  this block's number
 *  24  8  next never-used block (bump)
 *  32  8  free list head, 0 = empty
 *  40  8  blocks on the free list
 *  48 64  anchors: 8 x u64 the user keeps here (e.g. tree roots)
 * </pre>
 * Allocation pops the free list, else bumps; the goal hint is ignored. Freed blocks are pushed
 * (rewritten as free records), so a stale pointer to one fails the tree's node check.
 *
 * <h2>Checking the tree's side of the contract</h2>
 * This store enforces what {@link NodeStore} asks of its caller and throws
 * {@link IllegalStateException} otherwise: a block pinned for change is pinned by no one else, only
 * pinned blocks are released, free blocks are not modified or freed again, pinned blocks are not freed,
 * and nothing is pinned at {@link #flush}. (A read of a free block is allowed: it returns the free
 * record, which the tree then reports as corruption.) A block released after {@code modify} whose checksum does
 * not verify (a failed operation) is never written; {@link #flush} then refuses to run.
 *
 * <p>Concurrency: every method is synchronized on the store; views stay valid while pinned because
 * pinned blocks are never evicted.
 */
public final class DeviceNodeStore implements NodeStore, AutoCloseable {

    public static final int ANCHOR_SLOTS = 8;
    public static final int HEADER_MAGIC = 0x534e4643; // "CFNS"
    public static final int FREE_MAGIC = 0x52464643;   // "CFFR"
    private static final int BS = NodeCodec.BLOCK_SIZE;

    private static final int H_FIRST = 8;
    private static final int H_COUNT = 16;
    private static final int H_BUMP = 24;
    private static final int H_FREE_HEAD = 32;
    private static final int H_FREE_COUNT = 40;
    private static final int H_ANCHORS = 48;
    private static final int F_NEXT = 8;
    private static final int F_SELF = 16;

    /** Counters since the store was opened. */
    public record Stats(long reads, long modifies, long deviceReads, long deviceWrites, long allocations,
            long frees) {
    }

    private static final class Frame {
        final long block;
        final AlignedBuffer buffer;
        int readPins;
        boolean writePinned;
        boolean dirty;
        /** Released unsealed by a failed operation: never written. */
        boolean poisoned;

        Frame(long block, AlignedBuffer buffer) {
            this.block = block;
            this.buffer = buffer;
        }

        MemorySegment segment() {
            return buffer.segment();
        }

        boolean pinned() {
            return readPins > 0 || writePinned;
        }
    }

    private final BlockDevice device;
    private final AlignedBufferPool pool = new AlignedBufferPool(1 << 20);
    private final long first;
    private final long count;
    private final int cacheBlocks;
    /** Access-ordered: iteration starts at the least recently used block. */
    private final LinkedHashMap<Long, Frame> frames = new LinkedHashMap<>(64, 0.75f, true);
    private final Set<Long> free = new HashSet<>();
    private final long[] anchors = new long[ANCHOR_SLOTS];
    private long bump;
    private long freeHead;
    private boolean closed;
    private long reads;
    private long modifies;
    private long deviceReads;
    private long deviceWrites;
    private long allocations;
    private long frees;

    private DeviceNodeStore(BlockDevice device, long first, long count, int cacheBlocks) {
        this.device = device;
        this.first = first;
        this.count = count;
        this.cacheBlocks = Math.max(cacheBlocks, 2 * MAX_PINS + 2);
    }

    /**
     * Creates an empty store over blocks {@code [first, first + count)} of {@code device} and
     * writes its header (durably). The device stays the caller's to close.
     *
     * @param cacheBlocks blocks kept in memory (dirty blocks beyond it are written back early)
     */
    public static DeviceNodeStore format(BlockDevice device, long first, long count, int cacheBlocks)
            throws IOException {
        if (first < 0 || count < 2 || (first + count) * BS > device.size()) {
            throw new ErrnoException.InvalidArgumentException("format", "node store region [" + first + ", "
                    + (first + count) + ") does not fit a device of " + device.size() / BS + " blocks");
        }
        DeviceNodeStore s = new DeviceNodeStore(device, first, count, cacheBlocks);
        s.bump = first + 1;
        s.flush();
        return s;
    }

    /** Opens the store whose header is at block {@code first}, as the last {@link #flush} left it. */
    public static DeviceNodeStore open(BlockDevice device, long first, int cacheBlocks) throws IOException {
        DeviceNodeStore s;
        try (AlignedBufferPool headerPool = new AlignedBufferPool(BS); AlignedBuffer buf = headerPool.allocate(BS)) {
            MemorySegment h = buf.segment();
            device.read(first * BS, h);
            if (NodeCodec.magic(h) != HEADER_MAGIC) {
                throw new CorruptNodeException(first, String.format(
                        "bad magic 0x%08x: no node store header here", NodeCodec.magic(h)));
            }
            if (!NodeCodec.isSealed(h)) {
                throw new CorruptNodeException(first, String.format("node store header: checksum mismatch: "
                        + "stored 0x%08x, computed 0x%08x", NodeCodec.storedChecksum(h), NodeCodec.computeChecksum(h)));
            }
            long hFirst = h.get(NodeCodec.U64, H_FIRST);
            long hCount = h.get(NodeCodec.U64, H_COUNT);
            long hBump = h.get(NodeCodec.U64, H_BUMP);
            if (hFirst != first || hCount < 2 || (first + hCount) * BS > device.size()
                    || hBump <= first || hBump > first + hCount) {
                throw new CorruptNodeException(first, "node store header out of range: first " + hFirst
                        + ", count " + hCount + ", bump " + hBump + ", device blocks " + device.size() / BS);
            }
            s = new DeviceNodeStore(device, first, hCount, cacheBlocks);
            s.bump = hBump;
            s.freeHead = h.get(NodeCodec.U64, H_FREE_HEAD);
            for (int i = 0; i < ANCHOR_SLOTS; i++) {
                s.anchors[i] = h.get(NodeCodec.U64, H_ANCHORS + 8L * i);
            }
            long freeCount = h.get(NodeCodec.U64, H_FREE_COUNT);
            s.loadFreeList(freeCount);
        }
        return s;
    }

    /** Walks the free list once so that misuse of free blocks is caught. */
    private void loadFreeList(long expected) throws IOException {
        for (long b = freeHead; b != 0; ) {
            if (!free.add(b) || free.size() > expected) {
                throw new CorruptNodeException(b, "free list loops or is longer than the " + expected
                        + " blocks the header records");
            }
            b = nextFree(b);
        }
        if (free.size() != expected) {
            throw new CorruptNodeException(first, "free list holds " + free.size() + " blocks, header says " + expected);
        }
    }

    /** The first block of the region (the header). */
    public long firstBlock() {
        return first;
    }

    public long blockCount() {
        return count;
    }

    /** Blocks in use by nodes: handed out by {@link #allocate} and not freed. */
    public synchronized long usedBlocks() {
        return bump - first - 1 - free.size();
    }

    /** A value the user keeps in the header, e.g. a tree root; persisted by {@link #flush}. */
    public synchronized long anchor(int slot) {
        return anchors[slot];
    }

    public synchronized void setAnchor(int slot, long value) {
        anchors[slot] = value;
    }

    public synchronized Stats stats() {
        return new Stats(reads, modifies, deviceReads, deviceWrites, allocations, frees);
    }

    /** Blocks pinned right now (0 between tree operations). */
    public synchronized int pinnedBlocks() {
        int n = 0;
        for (Frame f : frames.values()) {
            if (f.pinned()) {
                n++;
            }
        }
        return n;
    }

    // ---- NodeStore ------------------------------------------------------------------------------

    @Override
    public synchronized MemorySegment read(long block) throws IOException {
        Frame f = frame(block, "read");
        if (f.writePinned) {
            throw new IllegalStateException("read of block " + block + " while it is pinned for change");
        }
        f.readPins++;
        reads++;
        return f.segment().asReadOnly();
    }

    @Override
    public synchronized MemorySegment modify(long block) throws IOException {
        Frame f = frame(block, "modify");
        if (f.pinned()) {
            throw new IllegalStateException("modify of block " + block + " while it is pinned ("
                    + (f.writePinned ? "for change" : f.readPins + " readers") + ")");
        }
        f.writePinned = true;
        f.dirty = true;
        modifies++;
        return f.segment();
    }

    @Override
    public synchronized void release(long block) {
        Frame f = frames.get(block);
        if (f == null || !f.pinned()) {
            throw new IllegalStateException("release of block " + block + ", which is not pinned");
        }
        if (f.writePinned) {
            f.writePinned = false;
            f.poisoned = !NodeCodec.isSealed(f.segment());
        } else {
            f.readPins--;
        }
    }

    @Override
    public synchronized long allocate(long goal) throws IOException {
        ensureOpen();
        long block;
        if (freeHead != 0) {
            block = freeHead;
            freeHead = nextFree(block);
            free.remove(block);
        } else if (bump < first + count) {
            block = bump++;
            newFrame(block).segment().fill((byte) 0);
        } else {
            throw new ErrnoException.NoSpaceException("allocate", "node store region [" + first + ", "
                    + (first + count) + ") of " + device.geometry().path() + " is full");
        }
        allocations++;
        return block;
    }

    @Override
    public synchronized void free(long block) throws IOException {
        ensureOpen();
        checkRange(block, "free");
        if (free.contains(block)) {
            throw new IllegalStateException("free of block " + block + ", which is already free");
        }
        Frame f = frames.get(block);
        if (f != null && f.pinned()) {
            throw new IllegalStateException("free of block " + block + " while it is pinned");
        }
        if (f == null) {
            f = newFrame(block);
        }
        MemorySegment s = f.segment();
        s.fill((byte) 0);
        s.set(NodeCodec.U32, 0, FREE_MAGIC);
        s.set(NodeCodec.U64, F_NEXT, freeHead);
        s.set(NodeCodec.U64, F_SELF, block);
        NodeCodec.writeChecksum(s);
        f.dirty = true;
        f.poisoned = false;
        freeHead = block;
        free.add(block);
        frees++;
    }

    // ---- persistence ----------------------------------------------------------------------------

    /**
     * Writes every dirty block and the header, then flushes the device: after it returns, reopening
     * gives back exactly the current contents and allocator state.
     *
     * @throws IllegalStateException if a block is pinned or a failed operation left an unsealed block
     */
    public synchronized void flush() throws IOException {
        ensureOpen();
        List<Frame> dirty = new ArrayList<>();
        for (Frame f : frames.values()) {
            if (f.pinned()) {
                throw new IllegalStateException("flush while block " + f.block + " is pinned");
            }
            if (f.poisoned) {
                throw new IllegalStateException("block " + f.block + " was released without a valid checksum "
                        + "(an operation failed part-way); refusing to write it");
            }
            if (f.dirty) {
                dirty.add(f);
            }
        }
        dirty.sort((a, b) -> Long.compare(a.block, b.block));
        for (Frame f : dirty) {
            writeBack(f);
        }
        try (AlignedBuffer buf = pool.allocate(BS)) {
            MemorySegment h = buf.segment();
            h.fill((byte) 0);
            h.set(NodeCodec.U32, 0, HEADER_MAGIC);
            h.set(NodeCodec.U64, H_FIRST, first);
            h.set(NodeCodec.U64, H_COUNT, count);
            h.set(NodeCodec.U64, H_BUMP, bump);
            h.set(NodeCodec.U64, H_FREE_HEAD, freeHead);
            h.set(NodeCodec.U64, H_FREE_COUNT, free.size());
            for (int i = 0; i < ANCHOR_SLOTS; i++) {
                h.set(NodeCodec.U64, H_ANCHORS + 8L * i, anchors[i]);
            }
            NodeCodec.writeChecksum(h);
            device.write(first * BS, h);
            deviceWrites++;
        }
        device.flush();
    }

    /**
     * Flushes (unless a failed operation left unsealed blocks, which are dropped) and frees the
     * cache. The device stays open.
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        try {
            boolean poisoned = frames.values().stream().anyMatch(f -> f.poisoned);
            if (!poisoned) {
                flush();
            }
        } finally {
            closed = true;
            for (Frame f : frames.values()) {
                f.buffer.close();
            }
            frames.clear();
            pool.close();
        }
    }

    // ---- cache ----------------------------------------------------------------------------------

    /**
     * The cached frame of {@code block}, loaded if needed. A free block can be read (it holds a free
     * record, which the tree's check reports as "not a B+tree node": a stale pointer is corruption
     * to report, not a crash) but not modified.
     */
    private Frame frame(long block, String call) throws IOException {
        ensureOpen();
        checkRange(block, call);
        if (!call.equals("read") && free.contains(block)) {
            throw new IllegalStateException(call + " of block " + block + ", which is free");
        }
        Frame f = frames.get(block);
        if (f == null) {
            f = newFrame(block);
            try {
                device.read(block * BS, f.segment());
                deviceReads++;
            } catch (IOException | RuntimeException e) {
                frames.remove(block);
                f.buffer.close();
                throw e;
            }
        }
        return f;
    }

    private void checkRange(long block, String call) throws CorruptNodeException {
        if (block <= first || block >= bump) {
            throw new CorruptNodeException(block, call + ": not a block this node store handed out (region ["
                    + (first + 1) + ", " + bump + ") in use)");
        }
    }

    /** A frame for a block not in the cache, after making room for it. */
    private Frame newFrame(long block) throws IOException {
        makeRoom();
        Frame f = new Frame(block, pool.allocate(BS));
        frames.put(block, f);
        return f;
    }

    private long nextFree(long block) throws IOException {
        Frame f = frames.get(block);
        MemorySegment s;
        if (f != null) {
            s = f.segment();
        } else {
            f = newFrame(block);
            device.read(block * BS, f.segment());
            deviceReads++;
            s = f.segment();
        }
        if (NodeCodec.magic(s) != FREE_MAGIC || !NodeCodec.isSealed(s) || s.get(NodeCodec.U64, F_SELF) != block) {
            throw new CorruptNodeException(block, "free list entry damaged (magic, checksum or self number wrong)");
        }
        long next = s.get(NodeCodec.U64, F_NEXT);
        if (next != 0 && (next <= first || next >= bump)) {
            throw new CorruptNodeException(block, "free list points outside the region: " + next);
        }
        return next;
    }

    /** Drops least recently used unpinned blocks, writing dirty ones first, to fit one more. */
    private void makeRoom() throws IOException {
        Iterator<Map.Entry<Long, Frame>> it = frames.entrySet().iterator();
        while (frames.size() >= cacheBlocks && it.hasNext()) {
            Frame f = it.next().getValue();
            if (f.pinned() || f.poisoned) {
                continue;
            }
            if (f.dirty) {
                writeBack(f);
            }
            it.remove();
            f.buffer.close();
        }
    }

    private void writeBack(Frame f) throws IOException {
        MemorySegment s = f.segment();
        if (!NodeCodec.isSealed(s)) {
            throw new IllegalStateException("block " + f.block + " is dirty but its checksum does not verify");
        }
        device.write(f.block * BS, s);
        deviceWrites++;
        f.dirty = false;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("node store over " + device.geometry().path() + " is closed");
        }
    }
}
