package io.coherentfs.core.extent;

/**
 * What backs a range of a file, as {@link ExtentMapper#begin} found it (iomap's struct iomap):
 * the IO paths move data for one mapping at a time and never look at the extent tree themselves.
 *
 * @param type     HOLE (reads as zeros; nothing on disk), MAPPED (written blocks), UNWRITTEN
 *                 (allocated, reads as zeros), NEW (allocated by this begin for a write: the caller
 *                 must write every block of it before {@link ExtentMapper#end}); DELALLOC is
 *                 reserved for the page cache's delayed allocation
 * @param logical  first logical block of the mapping
 * @param blocks   length in blocks
 * @param physical first device block (MAPPED, UNWRITTEN, NEW); -1 for a hole
 * @param sequence the inode's extent-map sequence when the mapping was made (the validity
 *                 cookie: a holder of a folio lock re-checks it and maps again when it moved)
 */
public record Mapping(Type type, long logical, long blocks, long physical, long sequence) {
    public enum Type { HOLE, DELALLOC, MAPPED, UNWRITTEN, NEW }

    public long end() {
        return logical + blocks;
    }

    /** True when reading the range must produce zeros without touching the device. */
    public boolean readsAsZeros() {
        return type == Type.HOLE || type == Type.UNWRITTEN || type == Type.DELALLOC;
    }

    /** The device block backing logical block {@code lblk} of this mapping. */
    public long deviceBlock(long lblk) {
        return physical + (lblk - logical);
    }
}
