package io.coherentfs.core.meta;

import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.journal.MetaBuffer;
import io.coherentfs.core.journal.MetaCache;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

/**
 * A read-only {@link NodeStore} over the metadata cache, for lookups outside any transaction.
 * One per reading thread and operation; the caller holds the tree lock shared.
 */
public final class MetaReader implements NodeStore {
    private final MetaCache cache;
    private final Map<Long, MetaBuffer> pins = new HashMap<>();

    public MetaReader(MetaCache cache) {
        this.cache = cache;
    }

    @Override
    public MemorySegment read(long block) throws IOException {
        MetaBuffer b = cache.get(block);
        if (pins.putIfAbsent(block, b) != null) {
            b.close();
            throw new IllegalStateException("block " + block + " pinned twice in one operation");
        }
        return b.segment().asReadOnly();
    }

    @Override
    public MemorySegment modify(long block) {
        throw new UnsupportedOperationException("read-only store");
    }

    @Override
    public void release(long block) {
        MetaBuffer b = pins.remove(block);
        if (b == null) {
            throw new IllegalStateException("block " + block + " released but not pinned");
        }
        b.close();
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
