package io.coherentfs.core.race;

import static io.coherentfs.core.dio.DioTestRig.PAGE;
import static io.coherentfs.core.dio.DioTestRig.async;
import static io.coherentfs.core.dio.DioTestRig.await;
import static io.coherentfs.core.dio.DioTestRig.differing;
import static io.coherentfs.core.dio.DioTestRig.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.core.dio.DioTestRig;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.CoherenceConfig.Switch;
import io.coherentfs.core.sync.TwoStateSharedLock;
import io.coherentfs.core.vfs.OpenFile;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/**
 * Seed 1 (M1 deferred completion, M2 post-write invalidation, M3 add lock): a buffered read
 * caches the range of an asynchronous direct write between its submission and its completion.
 * After the completion no cached page of the range may hold pre-write data.
 *
 * <p>The interleaving: the file holds OLD bytes on disk (written, fsynced); an AIO direct write
 * of NEW bytes over {@code [AT, AT+LEN)} — a non-extending, 4 KiB-aligned overwrite of written
 * blocks, so it really is asynchronous — is stopped at {@code dio-write.before-submit} (its range
 * is mapped and invalidated, the device still holds OLD). A buffered read of the range then:
 * <ul>
 *   <li>with M3 on, misses and waits on the add lock's ADD side (seen at
 *       {@code two-state-lock.before-wait}) until the write has completed — it can cache nothing
 *       stale;</li>
 *   <li>with M3 off, caches OLD. The write is released and completes: with M1 on the completion
 *       goes to a dio-done worker that invalidates the range (M2); with M1 off it completes on
 *       the IO's completion thread where it must not invalidate, so OLD stays cached.</li>
 * </ul>
 * Then the range is read buffered again and compared with NEW. Runs: (a) all on, (b) M1+M2 on
 * and M3 off, (c) M3 on and M1+M2 off (and the counters show the completion ran inline and
 * invalidated nothing: M3 alone saved it), all correct; (d) M1, M2 and M3 off: stale bytes.
 * The same for a synchronous direct write and M2 alone is at the end.
 */
class DioAioCompletionRaceTest {
    private static final String BEFORE_SUBMIT = "dio-write.before-submit";
    private static final int FILE = 16 * PAGE;
    private static final long AT = 4L * PAGE;
    private static final int LEN = 4 * PAGE;
    private static final byte[] OLD = pattern(1, FILE);
    private static final byte[] NEW = pattern(2, LEN);

    /**
     * What the scenario left behind.
     *
     * @param staleBytes bytes of the range that a buffered read after the completion returned
     *     different from NEW (pre-write data still cached)
     * @param readerWaitedOnAddLock the racing read missed and waited on the add lock
     * @param racingReadSawOld the racing read returned pre-write bytes (it got in before the IO)
     * @param deviceHasNew a direct read after the completion returns NEW (the disk is right)
     * @param inline async completions run where the IO ended, during the race
     * @param deferred async completions handed to a dio-done worker, during the race
     * @param invalidatedAfterSubmit folios dropped by direct-IO invalidation after the submission
     */
    record Outcome(int staleBytes, boolean readerWaitedOnAddLock, boolean racingReadSawOld, boolean deviceHasNew,
            long inline, long deferred, long invalidatedAfterSubmit) {}

    private Outcome run(String name, CoherenceConfig coherence, boolean aio) throws Exception {
        try (DioTestRig rig = DioTestRig.forRace(name, coherence)) {
            long ino = rig.create("f");
            OpenFile buffered = rig.open(ino);
            OpenFile direct = rig.openDirect(ino);
            rig.fs.write(buffered, 0, MemorySegment.ofArray(OLD));
            rig.fs.fsync(buffered, false);
            MemorySegment src = rig.buffer(NEW);

            rig.race.arm(BEFORE_SUBMIT);
            CompletableFuture<CompletionStage<Integer>> submitted = async("dio-writer", () -> aio
                    ? rig.fs.aioWrite(direct, AT, src)
                    : CompletableFuture.completedFuture(rig.fs.write(direct, AT, src)));
            rig.race.await(BEFORE_SUBMIT);
            long inline0 = rig.counter("coherentfs.dio.completions.inline");
            long deferred0 = rig.counter("coherentfs.dio.completions.deferred");
            long invalidated0 = rig.counter("coherentfs.dio.invalidated.folios");

            boolean waited = false;
            byte[] racing;
            CompletableFuture<byte[]> reader = null;
            if (coherence.pagecacheAddLock()) {
                // The read cannot get in: it waits for the BLOCK side to go. Learn that it waits.
                rig.race.arm(TwoStateSharedLock.RACE_BEFORE_WAIT, () -> { });
                reader = async("buffered-reader", () -> rig.readBuffered(buffered, AT, LEN));
                rig.race.await(TwoStateSharedLock.RACE_BEFORE_WAIT);
                waited = true;
                racing = null;
            } else {
                racing = rig.readBuffered(buffered, AT, LEN); // caches what the device holds: OLD
            }
            rig.race.release(BEFORE_SUBMIT);
            CompletionStage<Integer> stage = await(submitted, "the direct write's submission");
            int n = await(stage.toCompletableFuture(), "the direct write's completion");
            assertThat(n).as("bytes written").isEqualTo(LEN);
            if (reader != null) {
                racing = await(reader, "the buffered read blocked by the add lock");
            }
            long inline = rig.counter("coherentfs.dio.completions.inline") - inline0;
            long deferred = rig.counter("coherentfs.dio.completions.deferred") - deferred0;
            long invalidated = rig.counter("coherentfs.dio.invalidated.folios") - invalidated0;

            byte[] after = rig.readBuffered(buffered, AT, LEN);
            MemorySegment back = rig.buffer(LEN);
            rig.fs.read(direct, AT, back);
            boolean deviceHasNew = Arrays.equals(back.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), NEW);
            boolean sawOld = Arrays.equals(racing, Arrays.copyOfRange(OLD, (int) AT, (int) AT + LEN));
            rig.fs.release(buffered);
            rig.fs.release(direct);
            return new Outcome(differing(NEW, after), waited, sawOld, deviceHasNew, inline, deferred, invalidated);
        }
    }

    @Test
    void allMechanismsOn() throws Exception {
        Outcome o = run("s1-all-on", CoherenceConfig.DEFAULTS, true);
        assertThat(o.readerWaitedOnAddLock()).as("the racing read waited for the direct write (M3)").isTrue();
        assertThat(o.racingReadSawOld()).as("the racing read ran after the write: no pre-write data").isFalse();
        assertThat(o.staleBytes()).as("stale bytes cached after the completion: " + o).isZero();
        assertThat(o.deviceHasNew()).isTrue();
    }

    @Test
    void deferredCompletionAndInvalidationWithoutTheAddLock() throws Exception {
        Outcome o = run("s1-m3-off", CoherenceConfig.withOff(Set.of(Switch.PAGECACHE_ADD_LOCK)), true);
        assertThat(o.racingReadSawOld()).as("precondition: the racing read cached pre-write data").isTrue();
        assertThat(o.deferred()).as("the completion went to a dio-done worker (M1)").isEqualTo(1);
        assertThat(o.invalidatedAfterSubmit()).as("the worker invalidated the cached range (M2)").isEqualTo(LEN / PAGE);
        assertThat(o.staleBytes()).as("stale bytes cached after the completion: " + o).isZero();
        assertThat(o.deviceHasNew()).isTrue();
    }

    @Test
    void theAddLockAloneWithoutDeferredCompletionOrInvalidation() throws Exception {
        Outcome o = run("s1-m1m2-off", CoherenceConfig.withOff(
                Set.of(Switch.DEFERRED_COMPLETION, Switch.POST_WRITE_INVALIDATION)), true);
        assertThat(o.readerWaitedOnAddLock()).as("the racing read waited for the direct write (M3)").isTrue();
        // M1 and M2 did not save it: the completion ran inline and dropped no folio.
        assertThat(o.inline()).as("completions run inline: " + o).isEqualTo(1);
        assertThat(o.deferred()).as("completions deferred: " + o).isZero();
        assertThat(o.invalidatedAfterSubmit()).as("folios invalidated after the submission: " + o).isZero();
        assertThat(o.racingReadSawOld()).isFalse();
        assertThat(o.staleBytes()).as("stale bytes cached after the completion: " + o).isZero();
    }

    /** The negative run: with M1, M2 and M3 off the pre-write data stays cached. */
    @Test
    void withM1M2M3OffTheCacheKeepsPreWriteData() throws Exception {
        Outcome o = run("s1-m1m2m3-off", CoherenceConfig.withOff(Set.of(Switch.DEFERRED_COMPLETION,
                Switch.POST_WRITE_INVALIDATION, Switch.PAGECACHE_ADD_LOCK)), true);
        assertThat(o.racingReadSawOld()).as("precondition: the racing read cached pre-write data").isTrue();
        assertThat(o.inline()).as("the completion ran inline: " + o).isEqualTo(1);
        assertThat(o.deviceHasNew()).as("the device holds the new data: only the cache is wrong").isTrue();
        assertThat(o.staleBytes()).as("stale bytes: the whole range reads as pre-write data: " + o).isEqualTo(LEN);
    }

    /** M2 for a synchronous direct write (no add lock): the post-write invalidation drops the racing read's pages. */
    @Test
    void syncDirectWriteInvalidatesAfterwards() throws Exception {
        Outcome o = run("s1-sync-m3-off", CoherenceConfig.withOff(Set.of(Switch.PAGECACHE_ADD_LOCK)), false);
        assertThat(o.racingReadSawOld()).as("precondition: the racing read cached pre-write data").isTrue();
        assertThat(o.staleBytes()).as("stale bytes cached after the write: " + o).isZero();
    }

    /** Its negative run: with M2 (and M3) off the synchronous write leaves pre-write data cached. */
    @Test
    void syncDirectWriteWithM2OffLeavesStaleData() throws Exception {
        Outcome o = run("s1-sync-m2m3-off", CoherenceConfig.withOff(
                Set.of(Switch.POST_WRITE_INVALIDATION, Switch.PAGECACHE_ADD_LOCK)), false);
        assertThat(o.racingReadSawOld()).as("precondition: the racing read cached pre-write data").isTrue();
        assertThat(o.deviceHasNew()).isTrue();
        assertThat(o.staleBytes()).as("stale bytes after the write: " + o).isEqualTo(LEN);
    }
}
