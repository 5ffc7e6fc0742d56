package io.coherentfs.core.meta;

import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.journal.MetaBuffer;
import io.coherentfs.core.journal.MetaCache;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A read-only {@link NodeStore} over the metadata cache, for lookups outside any transaction.
 * One per reading thread and operation; the caller holds the tree lock shared.
 */
public final class MetaReader implements NodeStore {
    private final MetaCache cache;
    private final Pins pins = new Pins();

    public MetaReader(MetaCache cache) {
        this.cache = cache;
    }

    @Override
    public MemorySegment read(long block) throws IOException {
        MetaBuffer b = cache.get(block);
        pins.pin(block, b);
        return b.segment().asReadOnly();
    }

    @Override
    public MemorySegment modify(long block) {
        throw new UnsupportedOperationException("read-only store");
    }

    @Override
    public void release(long block) {
        pins.release(block);
    }

    @Override
    public long allocate(long goal) {
        throw new UnsupportedOperationException("read-only store");
    }

    @Override
    public void free(long block) {
        throw new UnsupportedOperationException("read-only store");
    }
}
