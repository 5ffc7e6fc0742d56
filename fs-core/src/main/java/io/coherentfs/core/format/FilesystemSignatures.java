package io.coherentfs.core.format;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Recognizes what a device already holds, so that mkfs never overwrites a filesystem or a
 * partition table by accident. Reads the first 68 KiB and looks for the signatures blkid(8)
 * knows best.
 */
public final class FilesystemSignatures {
    private static final int PROBE_BYTES = 68 * 1024;

    private FilesystemSignatures() {}

    /** A name for what {@code device} holds ("coherentfs", "ext4", "xfs", ...), or null for nothing known. */
    public static String detect(BlockDevice device, AlignedBufferPool pool) throws IOException {
        long length = Math.min(PROBE_BYTES, device.size());
        try (AlignedBuffer buf = pool.allocate(length)) {
            device.read(0, buf.segment());
            return detect(buf.segment());
        }
    }

    /** The same over the first bytes of a device (as many as there are, up to 68 KiB). */
    public static String detect(MemorySegment head) {
        if (head.byteSize() >= 8 && head.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0)
                == Superblock.MAGIC) {
            return "coherentfs";
        }
        if (matches(head, 0, "XFSB")) {
            return "xfs";
        }
        if (head.byteSize() >= 1082 && (head.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 1080)
                & 0xffff) == 0xEF53) {
            return "ext2/3/4";
        }
        if (matches(head, 65536 + 64, "_BHRfS_M")) {
            return "btrfs";
        }
        if (matches(head, 4086, "SWAPSPACE2") || matches(head, 4086, "SWAP-SPACE")) {
            return "swap";
        }
        if (matches(head, 32769, "CD001")) {
            return "iso9660";
        }
        if (matches(head, 512, "EFI PART")) {
            return "GPT partition table";
        }
        if (matches(head, 54, "FAT1") || matches(head, 82, "FAT32")) {
            return "vfat";
        }
        if (head.byteSize() >= 512 && (head.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 510)
                & 0xffff) == 0xAA55) {
            return "DOS/MBR boot sector";
        }
        return null;
    }

    private static boolean matches(MemorySegment head, long offset, String signature) {
        byte[] sig = signature.getBytes(StandardCharsets.US_ASCII);
        if (head.byteSize() < offset + sig.length) {
            return false;
        }
        return head.asSlice(offset, sig.length).mismatch(MemorySegment.ofArray(sig)) == -1;
    }
}
