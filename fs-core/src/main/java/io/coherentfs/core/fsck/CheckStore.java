package io.coherentfs.core.fsck;

import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.format.Layout;
import io.coherentfs.core.journal.MetaCache;
import io.coherentfs.core.meta.MetaReader;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.HashSet;
import java.util.Set;

/**
 * The read-only {@link NodeStore} fsck walks trees through: a {@link MetaReader} over a metadata
 * cache, except that a block outside the region where tree nodes may live (a pointer into the
 * superblock, journal or bitmap, or past the device) reads as zeros. The tree then reports it as a
 * damaged node (bad magic) instead of fsck failing with an IO error or reading the journal as
 * if it were a node; fsck separately reports the pointer as out of range.
 */
final class CheckStore implements NodeStore {
    private final MetaReader reader;
    private final Layout layout;
    private final Set<Long> zeroPins = new HashSet<>();

    CheckStore(MetaCache cache, Layout layout) {
        this.reader = new MetaReader(cache);
        this.layout = layout;
    }

    /** True when a tree node or data extent may lie at {@code block}. */
    static boolean inDataRegion(Layout layout, long block) {
        return block >= layout.firstDataBlock() && block < layout.backupSuperblock();
    }

    @Override
    public MemorySegment read(long block) throws IOException {
        if (!inDataRegion(layout, block)) {
            if (!zeroPins.add(block)) {
                throw new IllegalStateException("block " + block + " pinned twice in one operation");
            }
            return MemorySegment.ofArray(new byte[Layout.BLOCK_SIZE]).asReadOnly();
        }
        return reader.read(block);
    }

    @Override
    public MemorySegment modify(long block) {
        throw new UnsupportedOperationException("fsck's check is read-only");
    }

    @Override
    public void release(long block) {
        if (zeroPins.remove(block)) {
            return;
        }
        reader.release(block);
    }

    @Override
    public long allocate(long goal) {
        throw new UnsupportedOperationException("fsck's check is read-only");
    }

    @Override
    public void free(long block) {
        throw new UnsupportedOperationException("fsck's check is read-only");
    }
}
