package io.coherentfs.core.journal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Power cuts at random points on a {@link io.coherentfs.blockdev.fault.FaultyDevice}: between
 * operations (the commit thread may be mid-IO), at named points inside commit and checkpoint, and
 * after injected EIO or torn writes. After each cut the journal is reopened (replayed) and the home
 * blocks are checked against the model: the recovered state must equal the state after some
 * prefix of the changes (each change is one handle writing images derived from (change, block)),
 * and that prefix must include every change that a returned {@link Journal#commit()} made durable.
 * So: every committed change is present, no change is partly visible, and no block is torn.
 *
 * <p>One image and journal serve all scenarios of a test, each scenario starting from the state
 * the previous replay left, so the log's tail wanders and wraps. Seeds are fixed; a failure names
 * the scenario.
 */
class JournalCrashTest {
    private static final long J_START = 1;
    private static final long J_LENGTH = 256;
    private static final long HOME = 300;
    private static final int HOMES = 48;
    private static final String[] POINTS = {"commit.locked", "commit.captured", "commit.logged", "commit.done",
        "checkpoint.home"};

    private enum Mode { BETWEEN_OPERATIONS, INSIDE_COMMIT, INJECTED_FAULTS }

    private static final long[] HOME_BLOCKS = new long[HOMES];

    static {
        for (int i = 0; i < HOMES; i++) {
            HOME_BLOCKS[i] = HOME + i;
        }
    }

    /** One handle's change: the tag it writes into each of its blocks (indexes into HOME_BLOCKS). */
    private record Change(long tag, int[] slots) {}

    @Test
    void powerCutsBetweenOperations() throws Exception {
        assertThat(run(Mode.BETWEEN_OPERATIONS, 150, 1000)).isEqualTo(150);
    }

    @Test
    void powerCutsInsideCommitAndCheckpoint() throws Exception {
        assertThat(run(Mode.INSIDE_COMMIT, 150, 2000)).isEqualTo(150);
    }

    @Test
    void injectedIoErrorsAndTornWritesThenPowerCuts() throws Exception {
        assertThat(run(Mode.INJECTED_FAULTS, 150, 3000)).isEqualTo(150);
    }

    /** Runs {@code scenarios} crash scenarios; returns how many crashes were recovered and checked. */
    private int run(Mode mode, int scenarios, long seed) throws Exception {
        int checked = 0;
        try (JournalRig rig = JournalRig.create("crash-" + mode, 512, J_START, J_LENGTH)) {
            long nextTag = 1;
            long[] state = new long[HOMES];
            rig.open(options(new Random(seed)));
            for (int s = 0; s < scenarios; s++) {
                Random random = new Random(seed * 1_000_003L + s);
                String where = mode + " scenario " + s + " (seed " + seed + ")";
                Journal journal = rig.journal;
                List<Change> changes = new ArrayList<>();
                int durable = 0;
                int operations = 2 + random.nextInt(24);
                int crashBefore = mode == Mode.BETWEEN_OPERATIONS ? random.nextInt(operations + 1) : -1;
                AtomicBoolean crashed = new AtomicBoolean();
                if (mode == Mode.INSIDE_COMMIT) {
                    String point = POINTS[random.nextInt(POINTS.length)];
                    int nth = 1 + random.nextInt(4);
                    Random cut = new Random(random.nextLong());
                    AtomicInteger seen = new AtomicInteger();
                    journal.setRacePoint((name, seq) -> {
                        if (name.equals(point) && seen.incrementAndGet() == nth && crashed.compareAndSet(false, true)) {
                            try {
                                rig.device.crash(cut);
                            } catch (IOException e) {
                                throw new RuntimeException(e);
                            }
                        }
                    });
                }
                int faultAt = mode == Mode.INJECTED_FAULTS ? random.nextInt(operations) : -1;
                for (int op = 0; op < operations; op++) {
                    if (op == crashBefore) {
                        crashed.set(true);
                        rig.device.crash(random);
                        break;
                    }
                    if (op == faultAt) {
                        switch (random.nextInt(3)) {
                            case 0 -> rig.device.tearNextWrite(random.nextInt(8));
                            default -> rig.device.failNthIo(1 + random.nextInt(30));
                        }
                    }
                    int kind = random.nextInt(10);
                    try {
                        if (kind < 7) {
                            Change c = randomChange(random, nextTag++);
                            if (apply(journal, c)) {
                                changes.add(c);
                            } else {
                                break; // the change failed half-way; the journal was aborted
                            }
                        } else if (kind < 9) {
                            int closed = changes.size();
                            journal.commit();
                            durable = closed;
                        } else {
                            journal.checkpoint();
                        }
                    } catch (IOException e) {
                        break; // the journal aborted (device error or power cut)
                    }
                }
                if (crashed.compareAndSet(false, true)) {
                    rig.device.crash(random);
                }
                rig.closeQuietly();
                rig.device.clearFaults();
                rig.device.revive();

                Journal reopened = rig.open(options(random));
                long[] recovered = rig.readTags(rig.device, HOME_BLOCKS);
                int prefix = matchingPrefix(state, changes, durable, recovered);
                if (prefix < 0) {
                    fail(where + ": recovered " + Arrays.toString(recovered) + " is not the state after any prefix of "
                            + changes.size() + " changes with at least " + durable + " durable; before: "
                            + Arrays.toString(state) + "; replay: " + reopened.replayReport());
                }
                state = recovered;
                checked++;
            }
        }
        return checked;
    }

    private static JournalOptions options(Random random) {
        Duration commit = random.nextBoolean() ? Duration.ZERO : Duration.ofMillis(1 + random.nextInt(3));
        Duration checkpoint = random.nextInt(3) == 0 ? Duration.ofMillis(2) : Duration.ZERO;
        int percent = new int[] {10, 50, 100}[random.nextInt(3)];
        return JournalOptions.DEFAULTS.withCommitInterval(commit).withCheckpointInterval(checkpoint)
                .withCheckpointPercent(percent);
    }

    private static Change randomChange(Random random, long tag) {
        int n = 1 + random.nextInt(10);
        int[] slots = random.ints(0, HOMES).distinct().limit(n).toArray();
        return new Change(tag, slots);
    }

    /**
     * Applies {@code c} in one handle. Returns false if it failed half-way; then the journal has been
     * aborted <em>before</em> the handle closed, so its partial change never commits.
     */
    private static boolean apply(Journal journal, Change c) throws IOException {
        Handle h = journal.begin(c.slots().length);
        try {
            for (int slot : c.slots()) {
                try (MetaBuffer b = h.getWrite(HOME_BLOCKS[slot])) {
                    JournalRig.fill(b.segment(), c.tag(), HOME_BLOCKS[slot]);
                }
            }
        } catch (IOException e) {
            journal.abort(e);
            return false;
        } finally {
            h.close();
        }
        return true;
    }

    /** The smallest k >= durable such that recovered equals base with changes[0..k) applied, or -1. */
    private static int matchingPrefix(long[] base, List<Change> changes, int durable, long[] recovered) {
        long[] cur = base.clone();
        for (int k = 0; k <= changes.size(); k++) {
            if (k >= durable && Arrays.equals(cur, recovered)) {
                return k;
            }
            if (k < changes.size()) {
                Change c = changes.get(k);
                for (int slot : c.slots()) {
                    cur[slot] = c.tag();
                }
            }
        }
        return -1;
    }
}
