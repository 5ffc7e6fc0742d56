package io.coherentfs.core.extent;

import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.meta.MetaOp;
import java.io.IOException;

/**
 * "Where is the data" for the IO paths (DESIGN.md section 2, after iomap's iomap_begin and
 * iomap_end): {@link #begin} maps the start of a range to one {@link Mapping}, allocating over a
 * hole when asked to; the caller moves the data; {@link #end} records what was written (the new
 * extent, or the written part of an unwritten one). Data is always written between the two,
 * before the extent that points at it joins the transaction (ordered data).
 *
 * <p>The caller holds the inode's rwsem (exclusive for writes), the operation's transaction and
 * the tree lock; the extent map belongs to that transaction. {@code begin} allocates before it
 * changes any tree, so an ENOSPC from it leaves the transaction untouched.
 */
public final class ExtentMapper {
    /** How {@link #begin} treats a hole. */
    public enum Intent { READ, WRITE, ALLOCATE_UNWRITTEN }

    /** Makes the inode's extent map when it has none yet (a tree change: only after allocation). */
    @FunctionalInterface
    public interface MapCreator {
        ExtentMap create() throws IOException;
    }

    private ExtentMap map;
    private final long sequence;
    private final MapCreator creator;

    /** @param map the inode's extent map, or null when it has none (yet); {@code creator} makes one */
    public ExtentMapper(ExtentMap map, long sequence, MapCreator creator) {
        this.map = map;
        this.sequence = sequence;
        this.creator = creator;
    }

    private ExtentMap mapForInsert() throws IOException {
        if (map == null) {
            map = creator.create();
        }
        return map;
    }

    /**
     * Maps logical block {@code lblk} and up to {@code maxBlocks} blocks after it, as one mapping
     * of a single type. For {@link Intent#WRITE} and {@link Intent#ALLOCATE_UNWRITTEN} a hole is
     * allocated (near the block before it) and returned as NEW or UNWRITTEN; the allocation may
     * come out shorter than the hole.
     */
    public Mapping begin(MetaOp op, long lblk, long maxBlocks, Intent intent) throws IOException {
        ExtentMap.Extent e = map == null ? null : map.find(lblk);
        if (e != null) {
            long blocks = Math.min(maxBlocks, e.end() - lblk);
            return new Mapping(e.unwritten() ? Mapping.Type.UNWRITTEN : Mapping.Type.MAPPED, lblk, blocks,
                    e.physical() + (lblk - e.logical()), sequence);
        }
        ExtentMap.Extent next = map == null ? null : map.next(lblk);
        long holeBlocks = next == null ? maxBlocks : Math.min(maxBlocks, next.logical() - lblk);
        if (intent == Intent.READ) {
            return new Mapping(Mapping.Type.HOLE, lblk, holeBlocks, -1, sequence);
        }
        ExtentMap.Extent before = lblk == 0 || map == null ? null : map.find(lblk - 1);
        long goal = before == null ? 0 : before.physical() + (lblk - before.logical());
        Extent got = op.allocateData(goal, holeBlocks);
        Mapping.Type type = intent == Intent.WRITE ? Mapping.Type.NEW : Mapping.Type.UNWRITTEN;
        if (type == Mapping.Type.UNWRITTEN) {
            mapForInsert().insert(new ExtentMap.Extent(lblk, got.start(), got.length(), ExtentMap.FLAG_UNWRITTEN));
        }
        return new Mapping(type, lblk, got.length(), got.start(), sequence);
    }

    /**
     * Records that the first {@code writtenBlocks} blocks of {@code m} now hold data: a NEW
     * mapping becomes an extent, an UNWRITTEN one is converted. Returns the blocks newly charged
     * to the inode.
     */
    public long end(Mapping m, long writtenBlocks) throws IOException {
        switch (m.type()) {
            case NEW -> {
                if (writtenBlocks > 0) {
                    mapForInsert().insert(new ExtentMap.Extent(m.logical(), m.physical(), writtenBlocks, 0));
                }
                return m.blocks();
            }
            case UNWRITTEN -> {
                if (writtenBlocks > 0) {
                    map.markWritten(m.logical(), writtenBlocks);
                }
                return 0;
            }
            default -> {
                return 0;
            }
        }
    }
}
