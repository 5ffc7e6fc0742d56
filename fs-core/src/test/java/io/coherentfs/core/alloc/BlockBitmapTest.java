package io.coherentfs.core.alloc;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.BitSet;
import java.util.Random;
import org.junit.jupiter.api.Test;

class BlockBitmapTest {
    @Test
    void setAndClearAcrossWordsKeepTheFreeCount() {
        BlockBitmap b = new BlockBitmap(1000);
        assertThat(b.set(10, 200)).isEqualTo(200);
        assertThat(b.set(100, 150)).isEqualTo(40);
        assertThat(b.freeBlocks()).isEqualTo(1000 - 240);
        assertThat(b.clear(0, 64)).isEqualTo(54);
        assertThat(b.isFree(0, 64)).isTrue();
        assertThat(b.isUsed(64, 186)).isTrue();
        assertThat(b.nextFree(64)).isEqualTo(250);
        assertThat(b.nextUsed(0)).isEqualTo(64);
        assertThat(b.nextUsed(250)).isEqualTo(1000);
        b.set(250, 750);
        assertThat(b.nextFree(64)).isEqualTo(-1);
        assertThat(b.find(500, 1, 1)).isEqualTo(new Extent(0, 1));
    }

    @Test
    void aRunThatStraddlesTheGoalIsFoundWhole() {
        BlockBitmap b = new BlockBitmap(1000);
        b.set(0, 1000);
        b.clear(490, 20);   // 490..509
        b.clear(700, 5);
        // goal 500 is free but its run from there (10) is shorter than min 15: the whole run 490.. is
        assertThat(b.find(500, 15, 30)).isEqualTo(new Extent(490, 20));
        assertThat(b.find(500, 5, 30)).isEqualTo(new Extent(500, 10));
        assertThat(b.find(600, 3, 3)).isEqualTo(new Extent(700, 3));
        assertThat(b.find(600, 21, 30)).isNull();
        assertThat(b.largestFreeRun()).isEqualTo(new Extent(490, 20));
    }

    @Test
    void findAgreesWithABruteForceModel() {
        Random rnd = new Random(42);
        for (int round = 0; round < 300; round++) {
            int n = 1 + rnd.nextInt(400);
            BlockBitmap b = new BlockBitmap(n);
            BitSet model = new BitSet(n);
            for (int i = 0; i < n; i++) {
                if (rnd.nextInt(3) != 0) {
                    b.set(i, 1);
                    model.set(i);
                }
            }
            assertThat(b.freeBlocks()).isEqualTo(n - model.cardinality());
            long goal = rnd.nextInt(n + 5);
            int min = 1 + rnd.nextInt(4);
            int max = min + rnd.nextInt(6);
            Extent e = b.find(goal, min, max);
            int largest = 0;
            for (int s = model.nextClearBit(0); s < n; ) {
                int end = model.nextSetBit(s) < 0 ? n : model.nextSetBit(s);
                largest = Math.max(largest, end - s);
                s = model.nextClearBit(end);
            }
            if (largest < min) {
                assertThat(e).isNull();
                continue;
            }
            assertThat(e).isNotNull();
            assertThat(e.length()).isBetween((long) min, (long) max);
            assertThat(model.get((int) e.start(), (int) e.end()).isEmpty()).isTrue();
            long g = goal >= n ? 0 : goal;
            boolean goalHit = e.start() == g;
            if (e.length() < max && !goalHit) {
                assertThat(e.length()).isEqualTo(Math.min(largest, max));
            }
            int runEnd = model.nextSetBit((int) g) < 0 ? n : model.nextSetBit((int) g);
            if (!model.get((int) g) && runEnd - g >= min) {
                assertThat(goalHit).as("free goal run long enough must be taken").isTrue();
            }
        }
    }
}
