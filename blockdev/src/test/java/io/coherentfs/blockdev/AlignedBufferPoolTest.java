package io.coherentfs.blockdev;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class AlignedBufferPoolTest {

    @Test
    void buffersArePageAlignedExactlySizedAndDisjoint() {
        try (AlignedBufferPool pool = new AlignedBufferPool(1 << 20)) {
            Random r = new Random(1);
            List<AlignedBuffer> out = new ArrayList<>();
            for (int i = 0; i < 500; i++) {
                long size = 1 + r.nextInt(1 << 18);
                AlignedBuffer b = pool.allocate(size);
                assertThat(b.segment().address() % 4096).isZero();
                assertThat(b.byteSize()).isEqualTo(size);
                assertThat(b.capacity()).isGreaterThanOrEqualTo(size).isLessThan(2 * Math.max(size, 4096));
                out.add(b);
            }
            out.sort((a, b) -> Long.compare(a.segment().address(), b.segment().address()));
            for (int i = 1; i < out.size(); i++) {
                AlignedBuffer prev = out.get(i - 1);
                assertThat(prev.segment().address() + prev.capacity())
                        .as("buffers overlap").isLessThanOrEqualTo(out.get(i).segment().address());
            }
            out.forEach(AlignedBuffer::close);
            assertThat(pool.outstandingBuffers()).isZero();
        }
    }

    @Test
    void releasedBuffersAreReusedInsteadOfGrowingThePool() {
        try (AlignedBufferPool pool = new AlignedBufferPool(1 << 20)) {
            for (int i = 0; i < 10_000; i++) {
                try (AlignedBuffer b = pool.allocate(65536)) {
                    b.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) i);
                }
            }
            assertThat(pool.reservedBytes()).isEqualTo(1 << 20);
        }
    }

    @Test
    void slabTailIsSplitNotWasted() {
        try (AlignedBufferPool pool = new AlignedBufferPool(1 << 20)) {
            AlignedBuffer first = pool.allocate(4096);          // slab 1: 4 KiB used
            AlignedBuffer big = pool.allocate(1 << 20);         // needs slab 2; slab 1's tail is split
            Set<Long> small = new HashSet<>();
            for (int i = 0; i < 255; i++) {                     // 1 MiB - 4 KiB of pages from the tail
                small.add(pool.allocate(4096).segment().address());
            }
            assertThat(pool.reservedBytes()).isEqualTo(2 << 20);
            assertThat(small).hasSize(255);
            first.close();
            big.close();
        }
    }

    @Test
    void misuseIsRefused() {
        try (AlignedBufferPool pool = new AlignedBufferPool(1 << 20)) {
            assertThatThrownBy(() -> pool.allocate(0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> pool.allocate((1 << 20) + 1)).isInstanceOf(IllegalArgumentException.class);
            AlignedBuffer b = pool.allocate(10);
            b.close();
            assertThatThrownBy(b::close).isInstanceOf(IllegalStateException.class);
        }
        assertThatThrownBy(() -> new AlignedBufferPool(3000)).isInstanceOf(IllegalArgumentException.class);
    }
}
