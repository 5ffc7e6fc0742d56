package io.coherentfs.core.journal;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A cache of 4 KiB metadata blocks over a {@link BlockDevice} (the buffer cache the journal
 * journals). It only moves bytes: checksums are the business of the structures stored in the
 * blocks (B+tree nodes, superblocks), and writing blocks back is the journal's (checkpoint).
 *
 * <h2>Pinning and eviction</h2>
 * {@link #get} returns a {@link MetaBuffer} with one pin taken; {@link MetaBuffer#close()} drops
 * it. A block with pins is never evicted. The journal keeps its own pin on every block that is part
 * of a running, committing or not-yet-checkpointed transaction, so such ("dirty") blocks stay in
 * memory until they are at home; this cache never writes. Unpinned blocks sit in an LRU list and
 * are evicted, oldest first, when more than {@code budgetBlocks} blocks are cached. The budget is
 * soft: if every block is pinned, the cache grows past it rather than fail.
 *
 * <h2>Concurrency</h2>
 * One {@link ReentrantLock} guards the index, the LRU list and every buffer's pin count and load
 * state. Device reads happen with no lock held: the first getter of a missing block inserts it
 * "loading" and reads it; concurrent getters of the same block pin it and wait on
 * {@link #loadedCondition} until the load completes or fails (a failed load removes the block, and
 * every waiter gets the read's exception). The lock is a leaf: nothing else is taken under it and
 * no IO is done under it. It ranks in tier 5 of DESIGN.md section 4, inside the journal's lock.
 */
public final class MetaCache implements AutoCloseable {
    private static final int BLOCK = JournalFormat.BLOCK_SIZE;

    private final BlockDevice device;
    private final AlignedBufferPool pool;
    private final boolean ownsPool;
    private final long budgetBlocks;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition loadedCondition = lock.newCondition();
    /** Every cached block. Guarded by lock. */
    private final Map<Long, MetaBuffer> index = new HashMap<>();
    /** Unpinned, loaded blocks in access order (eldest first). Guarded by lock. */
    private final LinkedHashMap<Long, MetaBuffer> lru = new LinkedHashMap<>(16, 0.75f, true);
    private boolean closed;

    private final AtomicLong hits = new AtomicLong();
    private final AtomicLong misses = new AtomicLong();
    private final AtomicLong evictions = new AtomicLong();

    /**
     * @param device       where the blocks live
     * @param pool         where buffers come from; {@code null} for a private pool closed with the cache
     * @param budgetBlocks the number of blocks the cache tries to stay under (at least 1)
     */
    public MetaCache(BlockDevice device, AlignedBufferPool pool, long budgetBlocks) {
        if (budgetBlocks < 1) {
            throw new IllegalArgumentException("budget must be at least one block, got " + budgetBlocks);
        }
        this.device = device;
        this.ownsPool = pool == null;
        this.pool = pool == null ? new AlignedBufferPool() : pool;
        this.budgetBlocks = budgetBlocks;
    }

    public BlockDevice device() {
        return device;
    }

    AlignedBufferPool pool() {
        return pool;
    }

    /**
     * Returns {@code block} pinned, reading it from the device if it is not cached.
     *
     * @throws IOException the device's exception if the read fails (nothing stays cached then)
     */
    public MetaBuffer get(long block) throws IOException {
        return get(block, true);
    }

    /**
     * Returns {@code block} pinned without reading it when it is not cached (its bytes are then
     * zero): for a block just allocated, which the caller formats completely.
     */
    public MetaBuffer getForOverwrite(long block) throws IOException {
        return get(block, false);
    }

    private MetaBuffer get(long block, boolean read) throws IOException {
        if (block < 0 || block >= device.size() / BLOCK) {
            throw new IllegalArgumentException("block " + block + " is outside the device (" + device.size() / BLOCK + " blocks)");
        }
        MetaBuffer b;
        boolean mustLoad = false;
        lock.lock();
        try {
            checkOpen();
            b = index.get(block);
            if (b != null) {
                pinLocked(b);
                hits.incrementAndGet();
                while (!b.loaded && b.loadFailure == null) {
                    loadedCondition.awaitUninterruptibly();
                }
                if (b.loadFailure != null) {
                    IOException failure = b.loadFailure;
                    unpinLocked(b);
                    throw failure;
                }
                return b;
            }
            misses.incrementAndGet();
            b = new MetaBuffer(this, block, pool.allocate(BLOCK));
            b.pins = 1;
            index.put(block, b);
            if (read) {
                mustLoad = true;
            } else {
                b.segment().fill((byte) 0);
                b.loaded = true;
            }
            evictLocked();
        } finally {
            lock.unlock();
        }
        if (mustLoad) {
            load(b);
        }
        return b;
    }

    /** Reads a freshly inserted buffer; no lock held. */
    private void load(MetaBuffer b) throws IOException {
        IOException failure = null;
        try {
            device.read(b.block() * BLOCK, b.segment());
        } catch (IOException e) {
            failure = e;
        } catch (RuntimeException e) {
            failure = new IOException("reading metadata block " + b.block(), e);
        }
        lock.lock();
        try {
            if (failure == null) {
                b.loaded = true;
            } else {
                b.loadFailure = failure;
                index.remove(b.block(), b);
                b.evicted = true;
                unpinLocked(b);
            }
            loadedCondition.signalAll();
        } finally {
            lock.unlock();
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Takes another pin on a buffer the caller already holds pinned. */
    MetaBuffer pin(MetaBuffer b) {
        lock.lock();
        try {
            if (b.pins <= 0) {
                throw new IllegalStateException(b + " is not pinned");
            }
            pinLocked(b);
            return b;
        } finally {
            lock.unlock();
        }
    }

    private void pinLocked(MetaBuffer b) {
        if (b.pins++ == 0) {
            lru.remove(b.block());
        }
    }

    void unpin(MetaBuffer b) {
        lock.lock();
        try {
            unpinLocked(b);
            evictLocked();
        } finally {
            lock.unlock();
        }
    }

    private void unpinLocked(MetaBuffer b) {
        if (b.pins <= 0) {
            throw new IllegalStateException(b + " unpinned more often than pinned");
        }
        if (--b.pins == 0) {
            if (b.evicted || closed) {
                b.buffer.close();
            } else {
                lru.put(b.block(), b);
            }
        }
    }

    /** Evicts least recently used unpinned blocks while over budget. Holds lock. */
    private void evictLocked() {
        Iterator<MetaBuffer> it = lru.values().iterator();
        while (index.size() > budgetBlocks && it.hasNext()) {
            MetaBuffer victim = it.next();
            it.remove();
            index.remove(victim.block());
            victim.evicted = true;
            victim.buffer.close();
            evictions.incrementAndGet();
        }
    }

    /**
     * Forgets {@code block} if it is cached and unpinned (so the next {@link #get} reads the device),
     * e.g. after journal replay wrote it home. Returns false if it is pinned and so was kept.
     */
    public boolean invalidate(long block) {
        lock.lock();
        try {
            MetaBuffer b = index.get(block);
            if (b == null) {
                return true;
            }
            if (b.pins > 0) {
                return false;
            }
            lru.remove(block);
            index.remove(block);
            b.evicted = true;
            b.buffer.close();
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Blocks cached now (pinned or not). */
    public int size() {
        lock.lock();
        try {
            return index.size();
        } finally {
            lock.unlock();
        }
    }

    /** Blocks that are pinned now. */
    public int pinnedBlocks() {
        lock.lock();
        try {
            return index.size() - lru.size();
        } finally {
            lock.unlock();
        }
    }

    public long hits() {
        return hits.get();
    }

    public long misses() {
        return misses.get();
    }

    public long evictions() {
        return evictions.get();
    }

    /** Blocks that are cached, sorted; for tests and tools. */
    List<Long> cachedBlocks() {
        lock.lock();
        try {
            List<Long> l = new ArrayList<>(index.keySet());
            l.sort(null);
            return l;
        } finally {
            lock.unlock();
        }
    }

    private void checkOpen() throws IOException {
        if (closed) {
            throw new InterruptedIOException("metadata cache is closed");
        }
    }

    /**
     * Drops every unpinned block and frees its memory; pinned blocks are freed at their last unpin.
     * The device is not closed. Close the journal first.
     */
    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            for (MetaBuffer b : lru.values()) {
                b.evicted = true;
                b.buffer.close();
            }
            lru.clear();
            index.clear();
        } finally {
            lock.unlock();
        }
        if (ownsPool) {
            // Buffers still pinned become unusable, as the pool documents.
            pool.close();
        }
    }
}
