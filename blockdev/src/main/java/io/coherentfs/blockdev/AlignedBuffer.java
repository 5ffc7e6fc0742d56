package io.coherentfs.blockdev;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A page-aligned native buffer from an {@link AlignedBufferPool}. {@link #close()} gives it back;
 * the segment must not be used after that (the pool hands the memory to someone else).
 */
public final class AlignedBuffer implements AutoCloseable {
    private final AlignedBufferPool pool;
    private final MemorySegment block;
    private final int sizeClass;
    private final MemorySegment segment;
    private final AtomicBoolean released = new AtomicBoolean();

    AlignedBuffer(AlignedBufferPool pool, MemorySegment block, int sizeClass, long bytes) {
        this.pool = pool;
        this.block = block;
        this.sizeClass = sizeClass;
        this.segment = block.asSlice(0, bytes);
    }

    /** The buffer's memory, exactly as long as was asked for. */
    public MemorySegment segment() {
        return segment;
    }

    public long byteSize() {
        return segment.byteSize();
    }

    /** The whole size-class block behind the buffer (at least {@link #byteSize()}). */
    public long capacity() {
        return block.byteSize();
    }

    @Override
    public void close() {
        if (!released.compareAndSet(false, true)) {
            throw new IllegalStateException("aligned buffer released twice");
        }
        pool.release(block, sizeClass);
    }
}
