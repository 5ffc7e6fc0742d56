package io.coherentfs.core.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import org.junit.jupiter.api.Test;

class SuperblockTest {
    private static final long BITMAP_COVERAGE = 32_640;

    private static Superblock sample(Layout layout) {
        return new Superblock(Superblock.VERSION, 0, 0, 0, UUID.randomUUID(), "données", Superblock.STATE_CLEAN,
                layout, 11, 12, 13, 14, 100, 1, 1_700_000_000_000_000_000L, 5, 6, 7, 8);
    }

    @Test
    void layoutScalesTheJournalAndCoversEveryBlockWithTheBitmap() throws Exception {
        Layout small = Layout.forDevice(8L << 20, BITMAP_COVERAGE);
        assertThat(small.journalBlocks()).isEqualTo(256);
        assertThat(small.bitmapBlocks()).isEqualTo(1);
        assertThat(small.problem()).isNull();
        Layout big = Layout.forDevice(1L << 40, BITMAP_COVERAGE);
        assertThat(big.journalBlocks()).isEqualTo(32768);
        assertThat(big.bitmapBlocks() * BITMAP_COVERAGE).isGreaterThanOrEqualTo(big.blockCount());
        assertThat(big.problem()).isNull();
        assertThatThrownBy(() -> Layout.forDevice(4L << 20, BITMAP_COVERAGE))
                .isInstanceOf(ErrnoException.InvalidArgumentException.class).hasMessageContaining("too small");
    }

    @Test
    void roundTripsThroughARealImage() throws Exception {
        Path image = Path.of("target/test-images/superblock.img");
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 16L << 20);
        Superblock sb = sample(Layout.forDevice(16L << 20, BITMAP_COVERAGE));
        try (DirectDevice device = DirectDevice.open(image);
                AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer buf = pool.allocate(4096)) {
            sb.encode(buf.segment());
            device.write(0, buf.segment());
            device.flush();
            buf.segment().fill((byte) 0);
            device.read(0, buf.segment());
            assertThat(Superblock.decode(buf.segment(), 0)).isEqualTo(sb);
            assertThat(FilesystemSignatures.detect(device, pool)).isEqualTo("coherentfs");
        }
    }

    @Test
    void aFlippedByteIsAChecksumErrorNamingTheBlock() throws Exception {
        try (AlignedBufferPool pool = new AlignedBufferPool(); AlignedBuffer buf = pool.allocate(4096)) {
            sample(Layout.forDevice(16L << 20, BITMAP_COVERAGE)).encode(buf.segment());
            byte b = buf.segment().get(ValueLayout.JAVA_BYTE, 130);
            buf.segment().set(ValueLayout.JAVA_BYTE, 130, (byte) (b ^ 0x10));
            assertThatThrownBy(() -> Superblock.decode(buf.segment(), 4095))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(117))
                    .hasMessageContaining("block 4095").hasMessageContaining("checksum mismatch");
        }
    }

    @Test
    void unknownIncompatibleFeaturesAreRefusedAndBadGeometryIsCorruption() throws Exception {
        Layout layout = Layout.forDevice(16L << 20, BITMAP_COVERAGE);
        try (AlignedBufferPool pool = new AlignedBufferPool(); AlignedBuffer buf = pool.allocate(4096)) {
            Superblock future = new Superblock(1, 0x80, 0, 0, UUID.randomUUID(), "", 1, layout, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0);
            future.encode(buf.segment());
            assertThatThrownBy(() -> Superblock.decode(buf.segment(), 0))
                    .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(95))
                    .hasMessageContaining("incompatible features 0x80");
            Layout overlapping = new Layout(layout.blockCount(), 1, 256, 100, 1, 101, layout.blockCount() - 1);
            Superblock bad = new Superblock(1, 0, 0, 0, UUID.randomUUID(), "", 1, overlapping, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0);
            bad.encode(buf.segment());
            assertThatThrownBy(() -> Superblock.decode(buf.segment(), 0))
                    .hasMessageContaining("bad geometry");
            assertThatThrownBy(() -> new Superblock(1, 0, 0, 0, UUID.randomUUID(), "x".repeat(65), 1, layout,
                    0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0).encode(buf.segment()))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }
}
