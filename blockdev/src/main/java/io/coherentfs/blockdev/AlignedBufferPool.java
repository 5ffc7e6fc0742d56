package io.coherentfs.blockdev;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Hands out 4096-aligned native buffers for direct IO, carved from large slabs.
 *
 * <p>Design: buffers come in power-of-two size classes from one page (4 KiB) to a whole slab.
 * A request is rounded up to its class and served from that class's free list, else carved from
 * the current slab with a bump pointer. Because every class is a power-of-two number of pages and
 * slabs are page-aligned, every carved buffer is page-aligned. When the current slab's tail is too
 * small for a request, the tail is cut into the largest classes that fit and put on their free
 * lists, so nothing is lost; an empty class splits a free block of a larger class.
 *
 * <p>Slabs are anonymous private mappings of their own (mmap, then madvise(MADV_HUGEPAGE)), never
 * one per buffer: the kernel hands them out zeroed and, where transparent huge pages are
 * enabled for madvise, faults them in 2 MiB at a time. Arena.allocate, used first, zeroed each
 * slab again in Java and touched it 4 KiB page by 4 KiB page: filling a cold 1 GiB page cache
 * spent more CPU there than anywhere else (JFR, session 5). The segments are bound to the pool's
 * shared arena, so access after {@link #close()} throws instead of touching unmapped memory.
 * Memory is reused, not returned to the OS, until {@link #close()}.
 *
 * <p>Concurrency: free lists are lock-free deques; carving takes the pool's monitor. A buffer's
 * contents are undefined when handed out.
 */
public final class AlignedBufferPool implements AutoCloseable {
    public static final int ALIGNMENT = 4096;
    public static final long DEFAULT_SLAB_SIZE = 8L << 20;

    private final Arena arena = Arena.ofShared();
    private final long slabSize;
    private final int maxClass;
    private final ConcurrentLinkedDeque<MemorySegment>[] freeLists;
    private final AtomicLong slabBytes = new AtomicLong();
    private final AtomicLong buffersOut = new AtomicLong();

    // Guarded by this: the slab being carved and the offset of its first free byte.
    private MemorySegment slab;
    private long carveOffset;

    public AlignedBufferPool() {
        this(DEFAULT_SLAB_SIZE);
    }

    /** @param slabSize bytes per slab, a power of two of at least one page; also the largest buffer */
    @SuppressWarnings("unchecked")
    public AlignedBufferPool(long slabSize) {
        if (slabSize < ALIGNMENT || Long.bitCount(slabSize) != 1) {
            throw new IllegalArgumentException("slab size must be a power of two >= 4096, got " + slabSize);
        }
        this.slabSize = slabSize;
        this.maxClass = Long.numberOfTrailingZeros(slabSize / ALIGNMENT);
        this.freeLists = new ConcurrentLinkedDeque[maxClass + 1];
        for (int i = 0; i <= maxClass; i++) {
            freeLists[i] = new ConcurrentLinkedDeque<>();
        }
    }

    /** The largest buffer this pool hands out. */
    public long maxBufferSize() {
        return slabSize;
    }

    /** Bytes the pool has taken from the OS so far. */
    public long reservedBytes() {
        return slabBytes.get();
    }

    /** Buffers handed out and not yet closed. */
    public long outstandingBuffers() {
        return buffersOut.get();
    }

    /**
     * A page-aligned buffer whose segment is exactly {@code bytes} long (its capacity is rounded up
     * to the size class). Close it to give it back.
     */
    public AlignedBuffer allocate(long bytes) {
        if (bytes <= 0 || bytes > slabSize) {
            throw new IllegalArgumentException(
                    "buffer size must be in (0, " + slabSize + "] bytes, got " + bytes);
        }
        int sizeClass = classOf(bytes);
        MemorySegment block = freeLists[sizeClass].pollFirst();
        if (block == null) {
            block = splitLarger(sizeClass);
        }
        if (block == null) {
            block = carve(sizeClass);
        }
        buffersOut.incrementAndGet();
        return new AlignedBuffer(this, block, sizeClass, bytes);
    }

    void release(MemorySegment block, int sizeClass) {
        buffersOut.decrementAndGet();
        freeLists[sizeClass].offerFirst(block);
    }

    private static int classOf(long bytes) {
        long pages = (bytes + ALIGNMENT - 1) / ALIGNMENT;
        return 64 - Long.numberOfLeadingZeros(pages - 1);
    }

    /**
     * Takes a free block of a larger class and splits it in halves down to {@code sizeClass},
     * putting the unused halves on their free lists. Blocks are never merged back: the pool's
     * working set settles on the classes callers really use.
     */
    private MemorySegment splitLarger(int sizeClass) {
        for (int c = sizeClass + 1; c <= maxClass; c++) {
            MemorySegment big = freeLists[c].pollFirst();
            if (big != null) {
                for (int k = c - 1; k >= sizeClass; k--) {
                    long half = (long) ALIGNMENT << k;
                    freeLists[k].offerLast(big.asSlice(half, half));
                    big = big.asSlice(0, half);
                }
                return big;
            }
        }
        return null;
    }

    private synchronized MemorySegment carve(int sizeClass) {
        long need = (long) ALIGNMENT << sizeClass;
        if (slab == null || slabSize - carveOffset < need) {
            if (slab != null) {
                spillTail();
            }
            slab = mapSlab();
            slabBytes.addAndGet(slabSize);
            carveOffset = 0;
        }
        MemorySegment block = slab.asSlice(carveOffset, need);
        carveOffset += need;
        return block;
    }

    /** Cuts the current slab's unused tail into the largest classes that fit. Holds this. */
    private void spillTail() {
        while (slabSize - carveOffset >= ALIGNMENT) {
            long rest = slabSize - carveOffset;
            int c = Math.min(maxClass, 63 - Long.numberOfLeadingZeros(rest / ALIGNMENT));
            long piece = (long) ALIGNMENT << c;
            freeLists[c].offerLast(slab.asSlice(carveOffset, piece));
            carveOffset += piece;
        }
    }

    /** A fresh slab: zeroed, page-aligned, bound to {@link #arena}. Holds this. */
    private MemorySegment mapSlab() {
        MemorySegment mapping;
        try {
            mapping = LinuxSyscalls.mmap(slabSize, LinuxSyscalls.PROT_READ | LinuxSyscalls.PROT_WRITE,
                    LinuxSyscalls.MAP_PRIVATE | LinuxSyscalls.MAP_ANONYMOUS, -1, 0);
        } catch (ErrnoException e) {
            throw new OutOfMemoryError("cannot map a " + slabSize + "-byte buffer slab: " + e.getMessage());
        }
        try {
            LinuxSyscalls.madvise(mapping, LinuxSyscalls.MADV_HUGEPAGE);
        } catch (ErrnoException e) {
            // EINVAL without transparent huge pages: 4 KiB pages serve as well, a little slower
        }
        long bytes = slabSize;
        // Closing the arena unmaps the slab (after the arena has made its segments inaccessible).
        return mapping.reinterpret(bytes, arena, s -> unmapQuietly(MemorySegment.ofAddress(s.address()).reinterpret(bytes)));
    }

    private static void unmapQuietly(MemorySegment mapping) {
        try {
            LinuxSyscalls.munmap(mapping);
        } catch (ErrnoException e) {
            // our own mapping of exactly this size: EINVAL cannot happen; nothing to do at close anyway
        }
    }

    /** Frees every slab (the arena's cleanup unmaps them). Buffers still out become unusable (access throws). */
    @Override
    public synchronized void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
