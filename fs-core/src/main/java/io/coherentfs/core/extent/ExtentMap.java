package io.coherentfs.core.extent;

import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeCursor;
import io.coherentfs.core.btree.BTreeSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * One inode's extent map: which device blocks hold which logical blocks of the file, in the
 * inode's own B+tree (tree id = inode number, root in the inode record).
 *
 * <pre>
 * key   (8)  logical block, big-endian
 * value (16) physical block u64, length u32, flags u32 (little-endian)
 * </pre>
 * Invariants: extents do not overlap; an extent never crosses a hole; lengths are at least 1.
 * Neighbours that continue each other (logically and physically, same flags) are merged on
 * insert. Callers hold the filesystem's tree lock (tier 5).
 */
public final class ExtentMap {
    public static final BTreeSpec SPEC = BTreeSpec.of(8, 16);
    public static final int FLAG_UNWRITTEN = 1;
    /** Longest extent stored, so lengths fit the u32 field with room to merge. */
    public static final int MAX_LENGTH = 1 << 30;

    /** A run of logical blocks mapped to device blocks. */
    public record Extent(long logical, long physical, long length, int flags) {
        public long end() {
            return logical + length;
        }

        public boolean unwritten() {
            return (flags & FLAG_UNWRITTEN) != 0;
        }
    }

    private final BTree tree;

    public ExtentMap(BTree tree) {
        this.tree = tree;
    }

    public BTree tree() {
        return tree;
    }

    static byte[] key(long logical) {
        return ByteBuffer.allocate(8).putLong(logical).array();
    }

    static byte[] value(Extent e) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(e.physical()).putInt((int) e.length())
                .putInt(e.flags()).array();
    }

    static Extent decode(byte[] key, byte[] value) {
        ByteBuffer v = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN);
        return new Extent(ByteBuffer.wrap(key).getLong(), v.getLong(), Integer.toUnsignedLong(v.getInt()), v.getInt());
    }

    /** The extent containing {@code logical}, or null when it is a hole. */
    public Extent find(long logical) throws IOException {
        BTree.Entry e = tree.floor(key(logical));
        if (e == null) {
            return null;
        }
        Extent x = decode(e.key(), e.value());
        return logical < x.end() ? x : null;
    }

    /** The first extent starting at or after {@code logical}, or null. */
    public Extent next(long logical) throws IOException {
        BTree.Entry e = tree.ceiling(key(logical));
        return e == null ? null : decode(e.key(), e.value());
    }

    /** Adds an extent over a hole, merged with its predecessor when it continues it. */
    public void insert(Extent e) throws IOException {
        BTree.Entry prev = e.logical() == 0 ? null : tree.floor(key(e.logical() - 1));
        if (prev != null) {
            Extent p = decode(prev.key(), prev.value());
            if (p.end() > e.logical()) {
                throw new IllegalStateException("extent " + e + " overlaps " + p);
            }
            if (p.end() == e.logical() && p.physical() + p.length() == e.physical() && p.flags() == e.flags()
                    && p.length() + e.length() <= MAX_LENGTH) {
                tree.insert(prev.key(), value(new Extent(p.logical(), p.physical(), p.length() + e.length(), p.flags())));
                return;
            }
        }
        tree.insert(key(e.logical()), value(e));
    }

    /**
     * Turns logical blocks {@code [from, from + count)}, which lie inside one unwritten extent,
     * into written ones, splitting the extent into up to three.
     */
    public void markWritten(long from, long count) throws IOException {
        Extent e = find(from);
        if (e == null || !e.unwritten() || from + count > e.end()) {
            throw new IllegalStateException("blocks [" + from + ", " + (from + count) + ") are not inside one unwritten extent: " + e);
        }
        tree.delete(key(e.logical()));
        if (from > e.logical()) {
            insert(new Extent(e.logical(), e.physical(), from - e.logical(), e.flags()));
        }
        insert(new Extent(from, e.physical() + (from - e.logical()), count, e.flags() & ~FLAG_UNWRITTEN));
        if (from + count < e.end()) {
            insert(new Extent(from + count, e.physical() + (from + count - e.logical()), e.end() - from - count, e.flags()));
        }
    }

    /**
     * Unmaps logical blocks {@code [from, to)} (punch hole), trimming or splitting extents that
     * straddle either end; at most {@code maxExtents} extents are touched per call. Returns the
     * freed device runs; empty when the range holds nothing mapped any more.
     */
    public List<long[]> removeRange(long from, long to, int maxExtents) throws IOException {
        List<long[]> freed = new ArrayList<>();
        Extent first = find(from);
        Extent e = first != null ? first : next(from);
        while (e != null && e.logical() < to && freed.size() < maxExtents) {
            long cutFrom = Math.max(from, e.logical());
            long cutTo = Math.min(to, e.end());
            tree.delete(key(e.logical()));
            if (cutFrom > e.logical()) {
                tree.insert(key(e.logical()), value(new Extent(e.logical(), e.physical(), cutFrom - e.logical(), e.flags())));
            }
            if (cutTo < e.end()) {
                tree.insert(key(cutTo), value(new Extent(cutTo, e.physical() + (cutTo - e.logical()), e.end() - cutTo, e.flags())));
            }
            freed.add(new long[] {e.physical() + (cutFrom - e.logical()), cutTo - cutFrom});
            e = next(cutTo);
        }
        return freed;
    }

    /**
     * Removes the mapping of every logical block at or after {@code from} (truncate), trimming an
     * extent that straddles it; at most {@code maxExtents} extents are removed per call so a
     * transaction stays bounded. Returns the freed device runs; empty when nothing was left.
     */
    public List<long[]> removeFrom(long from, int maxExtents) throws IOException {
        List<long[]> freed = new ArrayList<>();
        Extent straddling = find(from);
        if (straddling != null && straddling.logical() < from) {
            long keep = from - straddling.logical();
            tree.insert(key(straddling.logical()), value(new Extent(straddling.logical(), straddling.physical(), keep,
                    straddling.flags())));
            freed.add(new long[] {straddling.physical() + keep, straddling.length() - keep});
        }
        List<Extent> doomed = new ArrayList<>();
        BTreeCursor c = tree.scan(key(from));
        while (doomed.size() < maxExtents && c.next()) {
            doomed.add(decode(c.key(), c.value()));
        }
        for (Extent x : doomed) {
            tree.delete(key(x.logical()));
            freed.add(new long[] {x.physical(), x.length()});
        }
        return freed;
    }

    /** Every extent, in order (fsck, tests). */
    public List<Extent> all() throws IOException {
        List<Extent> out = new ArrayList<>();
        BTreeCursor c = tree.scan(null);
        while (c.next()) {
            out.add(decode(c.key(), c.value()));
        }
        return out;
    }
}
