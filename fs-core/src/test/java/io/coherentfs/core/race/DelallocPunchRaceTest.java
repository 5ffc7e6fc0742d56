package io.coherentfs.core.race;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.dio.DioTestRig;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.CoherenceConfig.Switch;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.SetAttr;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Mechanism M4 (seed 4, iomap_write_delalloc_release): a buffered write that fails after
 * reserving delayed allocation must give back only the reservation under pages the cache holds
 * no dirty data for. The race, driven through race points:
 * <ol>
 *   <li>write() of page P of file F, whose source is a mapped view of a page past the end of
 *       another file (it will fault: EFAULT), reserves delalloc for P (a hole) and stops at
 *       {@code buffered-write.after-reserve};
 *   <li>a MappedView store into page P of F faults P in and dirties it; P's block is already
 *       delayed, so the store takes no reservation of its own — it now relies on the write's;
 *   <li>the write goes on, its source faults, it copied nothing and releases its reservation.
 * </ol>
 * With M4 the dirty page keeps its delalloc block, writeback gives it a real one and the mapped
 * data survives a remount. With M4 off the release truncates the page cache over P and punches
 * the block, so the mapped store is lost: the negative run shows that this test can fail.
 */
class DelallocPunchRaceTest {
    private static final int PAGE = 4096;
    private static final long P = 5;
    private static final byte[] MAPPED = "written through the mapping".getBytes(StandardCharsets.UTF_8);
    private static final int AT = 100;

    /** What the scenario left behind. */
    record Outcome(boolean mappedDataSurvived, double reservedAfterSync, long fileBlocks) {}

    private Outcome run(String name, CoherenceConfig coherence) throws Exception {
        try (DioTestRig rig = DioTestRig.forRace(name, coherence)) {
            long f = rig.create("f");
            long g = rig.create("g");
            OpenFile ff = rig.open(f);
            OpenFile gf = rig.open(g);
            rig.fs.write(ff, 0, MemorySegment.ofArray(new byte[3 * PAGE]));
            rig.fs.setattr(f, SetAttr.size(8 * PAGE)); // pages 3..7 are holes inside EOF
            rig.fs.write(gf, 0, MemorySegment.ofArray(new byte[PAGE])); // g: one page
            rig.fs.sync();

            MappedView viewF = rig.fs.map(ff);
            MappedView viewG = rig.fs.map(gf);
            rig.race.arm("buffered-write.after-reserve");
            CompletableFuture<Integer> write = CompletableFuture.supplyAsync(() -> {
                try {
                    // the source is page 2 of g, past g's end: the copy faults
                    return rig.fs.write(ff, P * PAGE, viewG, 2L * PAGE, PAGE);
                } catch (Exception e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });
            rig.race.await("buffered-write.after-reserve");
            viewF.store(P * PAGE + AT, MemorySegment.ofArray(MAPPED));
            rig.race.release("buffered-write.after-reserve");
            assertThatThrownBy(() -> write.get(30, TimeUnit.SECONDS))
                    .hasCauseInstanceOf(ErrnoException.class)
                    .cause().satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(14)); // EFAULT
            viewF.close();
            viewG.close();
            rig.fs.fsync(ff, false);
            double reserved = rig.gauge("coherentfs.delalloc.reserved.blocks");
            rig.fs.release(ff);
            rig.fs.release(gf);
            rig.reopen();
            OpenFile again = rig.fs.open(f, OpenFile.O_RDONLY);
            byte[] back = new byte[MAPPED.length];
            rig.fs.read(again, P * PAGE + AT, MemorySegment.ofArray(back));
            rig.fs.release(again);
            return new Outcome(java.util.Arrays.equals(back, MAPPED), reserved, rig.fs.getattr(f).blocks() / 8);
        }
    }

    @Test
    void aMappedStoreIntoThePageOfAFailedWriteSurvives() throws Exception {
        Outcome o = run("m4-on", CoherenceConfig.DEFAULTS);
        assertThat(o.mappedDataSurvived()).as("the mapped store survived writeback and remount").isTrue();
        assertThat(o.reservedAfterSync()).as("no delalloc reservation left after writeback").isZero();
        assertThat(o.fileBlocks()).as("pages 0-2 and page P hold blocks").isEqualTo(4);
    }

    /** The negative run: with M4 off the same interleaving loses the mapped data. */
    @Test
    void withM4OffTheMappedStoreIsLost() throws Exception {
        Outcome o = run("m4-off", CoherenceConfig.withOff(Set.of(Switch.DELALLOC_PUNCH_KEEPS_DIRTY)));
        assertThat(o.mappedDataSurvived()).as("with M4 off the truncation drops the dirty page").isFalse();
    }

    /** "Always punch beyond EOF": a failed extending write leaves no reservation and no size change. */
    @Test
    void aFailedWritePastEofGivesBackItsWholeReservation() throws Exception {
        try (DioTestRig rig = DioTestRig.forRace("m4-eof", CoherenceConfig.DEFAULTS)) {
            long f = rig.create("f");
            long g = rig.create("g");
            OpenFile ff = rig.open(f);
            OpenFile gf = rig.open(g);
            rig.fs.write(gf, 0, MemorySegment.ofArray(new byte[2 * PAGE]));
            try (MappedView viewG = rig.fs.map(gf)) {
                // 8 pages from g: the first two copy, the third faults: a short write of 2 pages
                int n = rig.fs.write(ff, 10L * PAGE, viewG, 0, 8L * PAGE);
                assertThat(n).isEqualTo(2 * PAGE);
                assertThat(rig.fs.getattr(f).size()).isEqualTo(12L * PAGE);
                assertThat(rig.gauge("coherentfs.delalloc.reserved.blocks")).as("g's two pages and the two copied keep theirs").isEqualTo(4);
                // nothing copied at all: everything goes back
                assertThatThrownBy(() -> rig.fs.write(ff, 20L * PAGE, viewG, 2L * PAGE, 4L * PAGE))
                        .isInstanceOf(ErrnoException.class);
                assertThat(rig.fs.getattr(f).size()).isEqualTo(12L * PAGE);
                assertThat(rig.gauge("coherentfs.delalloc.reserved.blocks")).isEqualTo(4);
            }
            rig.fs.sync();
            assertThat(rig.gauge("coherentfs.delalloc.reserved.blocks")).isZero();
            assertThat(rig.fs.getattr(f).blocks() / 8).as("only the two copied pages got blocks").isEqualTo(2);
            rig.fs.release(ff);
            rig.fs.release(gf);
        }
    }
}
