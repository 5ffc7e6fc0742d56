package io.coherentfs.core.journal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.error.ErrnoException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class MetaCacheTest {
    private static final int BLOCK = JournalRig.BLOCK;
    private JournalRig rig;

    @BeforeEach
    void setUp() throws Exception {
        rig = JournalRig.create("cache", 512, 1, 64);
        try (AlignedBuffer buf = rig.pool.allocate(BLOCK)) {
            for (long b = 100; b < 140; b++) {
                JournalRig.fill(buf.segment(), 1000 + b, b);
                rig.device.write(b * BLOCK, buf.segment());
            }
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        rig.close();
    }

    @Test
    void getReadsTheBlockOnMissAndHitsAfterwards() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 8)) {
            try (MetaBuffer b = cache.get(105)) {
                assertThat(b.block()).isEqualTo(105);
                assertThat(JournalRig.tagOf(b.segment(), 105)).isEqualTo(1105);
                assertThat(b.segment().address() % BLOCK).isZero();
            }
            try (MetaBuffer b = cache.get(105)) {
                assertThat(JournalRig.tagOf(b.segment(), 105)).isEqualTo(1105);
            }
            assertThat(cache.misses()).isEqualTo(1);
            assertThat(cache.hits()).isEqualTo(1);
        }
    }

    @Test
    void unpinnedBlocksAreEvictedLeastRecentlyUsedFirstAndPinnedOnesNever() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 4)) {
            MetaBuffer pinned = cache.get(100);
            for (long b = 101; b < 110; b++) {
                cache.get(b).close();
                assertThat(cache.size()).isLessThanOrEqualTo(4);
                assertThat(cache.cachedBlocks()).contains(100L);
            }
            assertThat(cache.cachedBlocks()).containsExactly(100L, 107L, 108L, 109L);
            cache.get(107).close(); // 107 is now the most recently used
            cache.get(120).close();
            assertThat(cache.cachedBlocks()).containsExactly(100L, 107L, 109L, 120L);
            assertThat(JournalRig.tagOf(pinned.segment(), 100)).isEqualTo(1100);
            pinned.close();
            assertThat(cache.evictions()).isPositive();
        }
    }

    @Test
    void theBudgetIsSoftWhenEverythingIsPinned() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 2)) {
            List<MetaBuffer> pins = new ArrayList<>();
            for (long b = 100; b < 106; b++) {
                pins.add(cache.get(b));
            }
            assertThat(cache.size()).isEqualTo(6);
            assertThat(cache.pinnedBlocks()).isEqualTo(6);
            pins.forEach(MetaBuffer::close);
            cache.get(130).close();
            assertThat(cache.size()).isEqualTo(2);
        }
    }

    @Test
    void getForOverwriteDoesNotReadAndReturnsZeros() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 8)) {
            long reads = rig.device.readCount();
            try (MetaBuffer b = cache.getForOverwrite(110)) {
                assertThat(JournalRig.tagOf(b.segment(), 110)).isZero();
            }
            assertThat(rig.device.readCount()).isEqualTo(reads);
        }
    }

    @Test
    void aFailedReadSurfacesTheDeviceErrorAndCachesNothing() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 8)) {
            rig.device.failRange(111L * BLOCK, BLOCK);
            assertThatThrownBy(() -> cache.get(111)).isInstanceOf(ErrnoException.MediaErrorException.class);
            assertThat(cache.size()).isZero();
            rig.device.clearFaults();
            try (MetaBuffer b = cache.get(111)) {
                assertThat(JournalRig.tagOf(b.segment(), 111)).isEqualTo(1111);
            }
        }
    }

    @Test
    void concurrentGettersOfOneBlockShareOneBuffer() throws Exception {
        try (MetaCache cache = new MetaCache(rig.device, null, 16);
                ExecutorService pool = Executors.newFixedThreadPool(4)) {
            for (int round = 0; round < 50; round++) {
                long block = 100 + round % 40;
                cache.invalidate(block);
                List<Future<MetaBuffer>> fs = new ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    fs.add(pool.submit(() -> cache.get(block)));
                }
                MetaBuffer first = fs.getFirst().get();
                for (Future<MetaBuffer> f : fs) {
                    MetaBuffer b = f.get();
                    assertThat(b).isSameAs(first);
                    assertThat(JournalRig.tagOf(b.segment(), block)).isEqualTo(1000 + block);
                }
                for (Future<MetaBuffer> f : fs) {
                    f.get().close();
                }
            }
            assertThat(cache.pinnedBlocks()).isZero();
        }
    }
}
