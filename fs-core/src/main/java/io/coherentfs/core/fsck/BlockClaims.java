package io.coherentfs.core.fsck;

import io.coherentfs.core.alloc.BlockBitmap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Every block something on the image references, and who references it: the fixed regions,
 * every tree node and every extent's data blocks. A block claimed twice is a cross-linked block
 * (two files, or a file and a tree node, would overwrite each other).
 *
 * <p>Kept as a bitmap (for the comparison with the allocator's bitmap) plus the claims by first
 * block (to name the earlier owner of a doubly claimed block). Single-threaded.
 */
final class BlockClaims {
    private record Claim(long start, long length, String owner) {
        long end() {
            return start + length;
        }
    }

    private final BlockBitmap referenced;
    private final TreeMap<Long, Claim> claims = new TreeMap<>();
    private long claimedBlocks;

    BlockClaims(long totalBlocks) {
        referenced = new BlockBitmap(totalBlocks);
    }

    /**
     * Claims {@code [start, start + length)} (inside the device: the caller checks) for
     * {@code owner}; returns null, or the owner of blocks of the range claimed before.
     */
    String claim(long start, long length, String owner) {
        String conflict = null;
        Map.Entry<Long, Claim> before = claims.floorEntry(start + length - 1);
        if (before != null && before.getValue().end() > start) {
            conflict = before.getValue().owner();
        } else if (!referenced.isFree(start, length)) {
            conflict = "another structure";
        }
        if (conflict == null) {
            claims.put(start, new Claim(start, length, owner));
            claimedBlocks += length;
        }
        referenced.set(start, length);
        return conflict;
    }

    boolean isReferenced(long block) {
        return referenced.isUsed(block);
    }

    /** A copy of the referenced set, as a bitmap (for rebuilding the allocator's). */
    BlockBitmap bitmap() {
        return referenced.copy();
    }

    long claimedBlocks() {
        return claimedBlocks;
    }
}
