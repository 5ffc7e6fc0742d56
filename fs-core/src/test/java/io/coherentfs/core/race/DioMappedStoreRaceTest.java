package io.coherentfs.core.race;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.async;
import static io.coherentfs.core.dio.DioTestRig.await;
import static io.coherentfs.core.dio.DioTestRig.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.dio.DioTestRig;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.CoherenceConfig.Switch;
import io.coherentfs.core.vfs.MappedView;
import io.coherentfs.core.vfs.OpenFile;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/**
 * Seed 2 (M6: invalidation never drops a dirty folio): a {@link MappedView} store that dirties a
 * page of a direct write's range while the write completes is never lost.
 *
 * <p>The file holds OLD (written, fsynced). A direct write of NEW over pages 1-2 is stopped at
 * {@code dio-write.completing}: its IO is done (the device holds NEW), its post-write
 * invalidation comes next. A store through a mapped view into page 1 then faults the page in
 * (reading NEW from the device), writes STORE over bytes 100.. of it and dirties it. The write goes
 * on and invalidates the range: with M6 the dirty folio is laundered (written back) before it is
 * dropped, so after fsync and a remount the file holds NEW with STORE on top; with M6 off it is
 * dropped dirty and the store is lost.
 *
 * <p>M3 is off in both runs: with the add lock on, the fault of the (invalidated, uncached) page
 * would wait on the ADD side until the write completed, and the store could not race it.
 */
class DioMappedStoreRaceTest {
    private static final String COMPLETING = "dio-write.completing";
    private static final int FILE = 4 * PAGE;
    private static final long AT = PAGE;
    private static final int LEN = 2 * PAGE;
    private static final int STORE_AT = 100;
    private static final byte[] OLD = pattern(5, FILE);
    private static final byte[] NEW = pattern(6, LEN);
    private static final byte[] STORE = "stored through the mapping during the direct write"
            .getBytes(StandardCharsets.UTF_8);

    /**
     * @param storeSurvived after fsync and remount the stored bytes are there
     * @param directDataSurvived the rest of the range holds the direct write's data
     * @param laundered folios the invalidation wrote back before dropping them
     * @param fsyncError the fsync after the write failed (an invalidation failure surfaced)
     */
    record Outcome(boolean storeSurvived, boolean directDataSurvived, long laundered, boolean fsyncError) {}

    private Outcome run(String name, CoherenceConfig coherence, boolean aio) throws Exception {
        try (DioTestRig rig = DioTestRig.forRace(name, coherence)) {
            long ino = rig.create("f");
            OpenFile buffered = rig.open(ino);
            OpenFile direct = rig.openDirect(ino);
            rig.fs.write(buffered, 0, MemorySegment.ofArray(OLD));
            rig.fs.fsync(buffered, false);
            MemorySegment src = rig.buffer(NEW);
            try (MappedView view = rig.fs.map(buffered)) {
                rig.race.arm(COMPLETING);
                CompletableFuture<CompletionStage<Integer>> write = async("dio-writer", () -> aio
                        ? rig.fs.aioWrite(direct, AT, src)
                        : CompletableFuture.completedFuture(rig.fs.write(direct, AT, src)));
                rig.race.await(COMPLETING);
                view.store(AT + STORE_AT, MemorySegment.ofArray(STORE));
                rig.race.release(COMPLETING);
                int n = await(await(write, "the direct write's submission").toCompletableFuture(),
                        "the direct write's completion");
                assertThat(n).isEqualTo(LEN);
            }
            boolean fsyncError = false;
            try {
                rig.fs.fsync(buffered, false);
            } catch (java.io.IOException e) {
                fsyncError = true;
            }
            long laundered = rig.counter("coherentfs.dio.laundered.folios");
            rig.fs.release(buffered);
            rig.fs.release(direct);
            rig.reopen();
            OpenFile again = rig.open(ino);
            byte[] back = rig.readBuffered(again, AT, LEN);
            rig.fs.release(again);
            byte[] stored = Arrays.copyOfRange(back, STORE_AT, STORE_AT + STORE.length);
            byte[] expectedRest = NEW.clone();
            System.arraycopy(back, STORE_AT, expectedRest, STORE_AT, STORE.length);
            return new Outcome(Arrays.equals(stored, STORE), Arrays.equals(back, expectedRest), laundered, fsyncError);
        }
    }

    @Test
    void aStoreDuringADirectWriteSurvives() throws Exception {
        Outcome o = run("s2-m6-on", CoherenceConfig.withOff(EnumSet.of(Switch.PAGECACHE_ADD_LOCK)), false);
        assertThat(o.storeSurvived()).as("the mapped store survived fsync and remount: " + o).isTrue();
        assertThat(o.directDataSurvived()).as("the direct write's data around it: " + o).isTrue();
        assertThat(o.laundered()).as("the dirty folio was laundered, not dropped").isPositive();
        assertThat(o.fsyncError()).isFalse();
    }

    @Test
    void aStoreDuringAnAsyncDirectWriteSurvives() throws Exception {
        Outcome o = run("s2-m6-on-aio", CoherenceConfig.withOff(EnumSet.of(Switch.PAGECACHE_ADD_LOCK)), true);
        assertThat(o.storeSurvived()).as("the mapped store survived fsync and remount: " + o).isTrue();
        assertThat(o.directDataSurvived()).as("the direct write's data around it: " + o).isTrue();
        assertThat(o.laundered()).isPositive();
    }

    /** The negative run: with M6 off the invalidation drops the dirty page and the store is lost. */
    @Test
    void withM6OffTheStoreIsLost() throws Exception {
        Outcome o = run("s2-m6-off", CoherenceConfig.withOff(
                EnumSet.of(Switch.PAGECACHE_ADD_LOCK, Switch.INVALIDATION_KEEPS_DIRTY)), false);
        assertThat(o.directDataSurvived()).as("the direct write's data is there").isTrue();
        assertThat(o.laundered()).isZero();
        assertThat(o.storeSurvived()).as("with M6 off the dirty page is dropped: the store is lost: " + o).isFalse();
    }
}
