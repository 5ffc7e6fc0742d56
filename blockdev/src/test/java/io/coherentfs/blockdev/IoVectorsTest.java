package io.coherentfs.blockdev;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The arithmetic behind continuing and tearing vectored requests, and the iovecs the kernel gets. */
class IoVectorsTest {
    private static final DeviceGeometry GEOMETRY = new DeviceGeometry("test", false, 1 << 20, 512, 512, 4096, "test");

    private static List<MemorySegment> run(Arena arena, long... sizes) {
        List<MemorySegment> segs = new ArrayList<>();
        for (long size : sizes) {
            segs.add(arena.allocate(size, 4096));
        }
        return segs;
    }

    /** {address, length} of each segment, for comparing lists of slices. */
    private static List<List<Long>> shape(List<MemorySegment> segs) {
        return segs.stream().map(s -> List.of(s.address(), s.byteSize())).toList();
    }

    @Test
    void skipDropsWholeSegmentsThenSlicesTheOneItEndsIn() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> segs = run(arena, 4096, 8192, 4096);
            assertThat(shape(IoVectors.skip(segs, 0))).isEqualTo(shape(segs));
            assertThat(shape(IoVectors.skip(segs, 4096))).isEqualTo(shape(segs.subList(1, 3)));
            List<MemorySegment> mid = IoVectors.skip(segs, 4096 + 512);
            assertThat(mid).hasSize(2);
            assertThat(mid.get(0).address()).isEqualTo(segs.get(1).address() + 512);
            assertThat(mid.get(0).byteSize()).isEqualTo(8192 - 512);
            assertThat(mid.get(1)).isEqualTo(segs.get(2));
            assertThat(IoVectors.skip(segs, 16384)).isEmpty();
            assertThat(IoVectors.totalLength(mid)).isEqualTo(16384 - 4096 - 512);
        }
    }

    @Test
    void prefixKeepsWholeSegmentsThenCutsTheOneItEndsIn() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> segs = run(arena, 4096, 8192, 4096);
            assertThat(IoVectors.prefix(segs, 0)).isEmpty();
            assertThat(shape(IoVectors.prefix(segs, 4096))).isEqualTo(shape(segs.subList(0, 1)));
            List<MemorySegment> cut = IoVectors.prefix(segs, 4096 + 1024);
            assertThat(cut).hasSize(2);
            assertThat(cut.get(1).address()).isEqualTo(segs.get(1).address());
            assertThat(cut.get(1).byteSize()).isEqualTo(1024);
            assertThat(shape(IoVectors.prefix(segs, 1 << 20))).isEqualTo(shape(segs));
        }
    }

    @Test
    void checkShapeNamesTheOffendingSegment() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> good = run(arena, 4096, 8192);
            assertThat(IoVectors.checkShape("writev", 4096, good, GEOMETRY)).isNull();
            assertThat(IoVectors.checkShape("writev", 0, List.of(), GEOMETRY))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class);
            List<MemorySegment> bad = List.of(good.get(0), good.get(1).asSlice(0, 1000));
            assertThat(IoVectors.checkShape("writev", 0, bad, GEOMETRY))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class)
                    .hasMessageContaining("segment 1 length 1000");
            assertThat(IoVectors.checkShape("writev", 256, good, GEOMETRY))
                    .isInstanceOf(ErrnoException.MisalignedIoException.class).hasMessageContaining("offset 256");
            List<MemorySegment> many = new ArrayList<>();
            for (int i = 0; i <= IoVectors.IOV_MAX; i++) {
                many.add(good.get(0));
            }
            assertThat(IoVectors.checkShape("readv", 0, many, GEOMETRY))
                    .isInstanceOf(ErrnoException.InvalidArgumentException.class).hasMessageContaining("1025 segments");
            assertThat(IoVectors.checkShape("readv", 0, many.subList(0, IoVectors.IOV_MAX), GEOMETRY)).isNull();
        }
    }

    @Test
    void putIovecsWritesBaseAndLengthPerSegmentLessTheSkippedBytes() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> segs = run(arena, 4096, 8192, 4096);
            MemorySegment iov = arena.allocate(3 * LinuxSyscalls.IOVEC_BYTES, 8);
            assertThat(LinuxSyscalls.putIovecs(iov, segs, 0)).isEqualTo(3);
            for (int i = 0; i < 3; i++) {
                assertThat(iov.get(JAVA_LONG, i * 16L)).isEqualTo(segs.get(i).address());
                assertThat(iov.get(JAVA_LONG, i * 16L + 8)).isEqualTo(segs.get(i).byteSize());
            }
            assertThat(LinuxSyscalls.putIovecs(iov, segs, 4096 + 2048)).isEqualTo(2);
            assertThat(iov.get(JAVA_LONG, 0)).isEqualTo(segs.get(1).address() + 2048);
            assertThat(iov.get(JAVA_LONG, 8)).isEqualTo(8192 - 2048);
            assertThat(iov.get(JAVA_LONG, 16)).isEqualTo(segs.get(2).address());
            assertThat(iov.get(JAVA_LONG, 24)).isEqualTo(4096);
        }
    }
}
