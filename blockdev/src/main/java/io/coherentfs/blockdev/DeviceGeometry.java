package io.coherentfs.blockdev;

/**
 * What coherentfs knows about the storage under a {@link BlockDevice}.
 *
 * @param path              the image file or block device as it was given
 * @param blockDevice       true for a block device node, false for a regular image file
 * @param size              usable bytes; IO past it is refused
 * @param dioOffsetAlign    direct IO offsets and lengths must be multiples of this
 * @param dioMemoryAlign    direct IO buffer addresses must be multiples of this
 * @param physicalBlockSize the device's physical sector size (the unit a torn write tears at)
 * @param alignmentSource   where {@code dioOffsetAlign} came from: "statx", "BLKSSZGET" or "default"
 */
public record DeviceGeometry(
        String path,
        boolean blockDevice,
        long size,
        int dioOffsetAlign,
        int dioMemoryAlign,
        int physicalBlockSize,
        String alignmentSource) {

    /** The alignment that satisfies both the offset/length and the memory rule. */
    public int strictestAlign() {
        return Math.max(dioOffsetAlign, dioMemoryAlign);
    }
}
