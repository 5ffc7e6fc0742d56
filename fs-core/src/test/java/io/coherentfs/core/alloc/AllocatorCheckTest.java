package io.coherentfs.core.alloc;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

class AllocatorCheckTest {
    @Test
    void fsckCheckFindsALeakAndAReferencedButFreeBlock() throws IOException {
        try (AllocImage image = AllocImage.create("check", 70_000)) {
            BlockAllocator alloc = image.format();
            BitSet referenced = new BitSet();
            referenced.set(0);
            referenced.set(69_999);
            Extent a = alloc.allocate(1000, 50, 50, () -> 1);
            Extent b = alloc.allocate(2000, 10, 10, () -> 1);
            referenced.set((int) a.start(), (int) a.end());
            referenced.set((int) b.start(), (int) b.end());
            assertThat(alloc.check(b2 -> referenced.get((int) b2)).clean()).isTrue();

            // a freed (pending) extent still referenced: danger; an allocated extent nobody references: leak
            alloc.free(1010, 5, () -> 1);
            referenced.clear(2003);
            referenced.set(5000);
            CheckReport report = alloc.check(b2 -> referenced.get((int) b2));
            assertThat(report.leaked()).containsExactly(new Extent(2003, 1));
            assertThat(report.referencedButFree()).containsExactly(new Extent(1010, 5), new Extent(5000, 1));
            assertThat(report.messages()).containsExactly(
                    "blocks 1010..1014: referenced but marked free in the bitmap (could be allocated twice)",
                    "block 5000: referenced but marked free in the bitmap (could be allocated twice)",
                    "block 2003: marked in use in the bitmap but referenced by nothing (leaked)");

            // the same after a write and a fresh mount (what fsck sees)
            alloc.writeDirtyBlocks(() -> 1, image.sink());
            assertThat(image.mount().check(b2 -> referenced.get((int) b2))).isEqualTo(report);
        }
    }
}
