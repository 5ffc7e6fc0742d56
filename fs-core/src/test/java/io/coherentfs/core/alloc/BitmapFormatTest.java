package io.coherentfs.core.alloc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.btree.NodeCodec;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

class BitmapFormatTest {
    static final long BLOCKS = 70_000;

    @Test
    void layoutIsAsDocumented() {
        assertThat(BitmapFormat.BITS_PER_BLOCK).isEqualTo(32_512);
        assertThat(BitmapRegion.blocksFor(32_512)).isEqualTo(1);
        assertThat(BitmapRegion.blocksFor(32_513)).isEqualTo(2);
        BitmapRegion region = new BitmapRegion(7, BLOCKS);
        BlockBitmap bitmap = new BlockBitmap(BLOCKS);
        bitmap.set(32_512, 1);   // first bit of index 1
        bitmap.set(32_512 + 70, 1);
        MemorySegment seg = MemorySegment.ofArray(new byte[4096]);
        BitmapFormat.encode(region, 1, bitmap, seg);
        var le = ByteOrder.LITTLE_ENDIAN;
        assertThat(seg.asSlice(0, 4).toArray(ValueLayout.JAVA_BYTE)).containsExactly('C', 'F', 'B', 'M');
        assertThat(seg.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(le), 4)).isEqualTo(NodeCodec.computeChecksum(seg));
        assertThat(NodeCodec.isSealed(seg)).isTrue();
        assertThat(seg.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(le), 8)).isEqualTo(8);
        assertThat(seg.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(le), 16)).isEqualTo(32_512);
        assertThat(seg.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(le), 24)).isEqualTo(32_512);
        assertThat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le), 28)).isEqualTo((short) 1);
        assertThat(seg.get(ValueLayout.JAVA_BYTE, 32)).isEqualTo((byte) 1);            // bit 0
        assertThat(seg.get(ValueLayout.JAVA_BYTE, 32 + 70 / 8)).isEqualTo((byte) (1 << (70 % 8)));
        // the last block covers only the rest
        MemorySegment last = MemorySegment.ofArray(new byte[4096]);
        BitmapFormat.encode(region, 2, bitmap, last);
        assertThat(last.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(le), 24)).isEqualTo((int) (BLOCKS - 2 * 32_512));
    }

    @Test
    void aFlippedByteInABitmapBlockIsReportedNamingTheBlock() throws IOException {
        try (AllocImage image = AllocImage.create("flip", BLOCKS)) {
            BlockAllocator alloc = image.format();
            alloc.allocate(40_000, 100, 100, () -> 1);
            alloc.writeDirtyBlocks(() -> 1, image.sink());
            image.flipByte(2, 32 + (40_000 - 32_512) / 8);   // a bit byte of bitmap block 2
            assertThatThrownBy(image::mount).isInstanceOfSatisfying(ErrnoException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EUCLEAN.code()))
                    .hasMessageContaining("bitmap block 2 ").hasMessageContaining("checksum mismatch");
        }
    }

    @Test
    void headerDamageIsReportedNamingTheBlock() throws IOException {
        try (AllocImage image = AllocImage.create("header", BLOCKS)) {
            image.format();
            image.flipByte(3, 0);
            assertThatThrownBy(image::load).hasMessageContaining("bitmap block 3 ").hasMessageContaining("bad magic");
        }
        try (AllocImage image = AllocImage.create("misdirected", BLOCKS)) {
            image.format();
            // bitmap block 1's image written where block 2 belongs: valid checksum, wrong place
            try (var buf = image.pool.allocate(4096)) {
                image.device.read(4096, buf.segment());
                image.device.write(2 * 4096, buf.segment());
            }
            assertThatThrownBy(image::load).isInstanceOfSatisfying(ErrnoException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EUCLEAN.code()))
                    .hasMessageContaining("bitmap block 2 ").hasMessageContaining("records itself as block 1");
        }
    }

    @Test
    void bitsPastTheDeviceEndAreCorruption() throws IOException {
        try (AllocImage image = AllocImage.create("tail", BLOCKS)) {
            image.format();
            try (var buf = image.pool.allocate(4096)) {
                image.device.read(3 * 4096, buf.segment());
                buf.segment().set(ValueLayout.JAVA_BYTE, 4095, (byte) 1);
                NodeCodec.writeChecksum(buf.segment());
                image.device.write(3 * 4096, buf.segment());
            }
            assertThatThrownBy(image::load).hasMessageContaining("bitmap block 3 ")
                    .hasMessageContaining("bits set past the");
        }
    }

    @Test
    void formatRefusesRangesOutsideTheDevice() throws IOException {
        try (AllocImage image = AllocImage.create("range", BLOCKS)) {
            assertThatThrownBy(() -> BlockAllocator.format(image.device, image.pool, image.region,
                    List.of(new Extent(BLOCKS - 1, 2)))).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> new BitmapRegion(BLOCKS - 2, BLOCKS)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> BlockAllocator.format(image.device, image.pool, new BitmapRegion(1, BLOCKS + 1),
                    List.of())).isInstanceOf(IllegalArgumentException.class);
        }
    }
}
