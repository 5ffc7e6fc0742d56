package io.coherentfs.core.meta;

import io.coherentfs.core.journal.MetaBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * The metadata buffers one operation has pinned, by block number, enforcing the
 * {@link io.coherentfs.core.btree.NodeStore} rule that an operation pins a block at most once.
 * Single-threaded, like the operation it belongs to.
 */
final class Pins {
    private final Map<Long, MetaBuffer> pinned = new HashMap<>();

    void pin(long block, MetaBuffer b) {
        if (pinned.putIfAbsent(block, b) != null) {
            b.close();
            throw new IllegalStateException("block " + block + " pinned twice in one operation");
        }
    }

    void release(long block) {
        MetaBuffer b = pinned.remove(block);
        if (b == null) {
            throw new IllegalStateException("block " + block + " released but not pinned");
        }
        b.close();
    }

    void releaseAll() {
        for (MetaBuffer b : pinned.values()) {
            b.close();
        }
        pinned.clear();
    }
}
