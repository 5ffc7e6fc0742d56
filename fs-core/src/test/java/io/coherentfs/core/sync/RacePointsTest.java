package io.coherentfs.core.sync;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 10, unit = TimeUnit.SECONDS) // a hang guard only; nothing asserts on time
class RacePointsTest {

    @Test
    void anArmedPointStopsAThreadUntilReleased() throws Exception {
        try (var points = RacePoints.armable()) {
            points.arm("before-pin");
            var runner = Threads.start("runner", () -> {
                points.hit("before-pin");
                return "passed";
            });
            points.await("before-pin");
            Threads.awaitParked(runner.thread());
            assertThat(runner.result()).isNotDone();
            assertThat(points.hits("before-pin")).isEqualTo(1);

            points.release("before-pin");
            assertThat(runner.result().get()).isEqualTo("passed");
            points.hit("before-pin"); // released stays open
            assertThat(points.hits("before-pin")).isEqualTo(2);
        }
    }

    @Test
    void anActionRunsInlineOnTheThreadThatReachesThePoint() throws Exception {
        try (var points = RacePoints.armable()) {
            var ranOn = new AtomicReference<Thread>();
            points.arm("p", () -> ranOn.set(Thread.currentThread()));
            var runner = Threads.start("runner", () -> {
                points.hit("p");
                return Thread.currentThread();
            });
            Thread hitter = runner.result().get();
            assertThat(ranOn.get()).isSameAs(hitter);
            points.await("p"); // reached, returns at once
        }
    }

    @Test
    void closeReleasesStoppedThreads() throws Exception {
        var points = RacePoints.armable();
        points.arm("p");
        var runner = Threads.start("runner", () -> { points.hit("p"); return true; });
        points.await("p");
        points.close();
        assertThat(runner.result().get()).isTrue();
    }

    @Test
    void unarmedPointsAndNoneNeverBlock() {
        var points = RacePoints.armable();
        for (int i = 0; i < 1_000_000; i++) { // on this thread: a block would hang the test
            points.hit("nobody-armed-this");
            RacePoints.NONE.hit("anything");
        }
        assertThatThrownBy(() -> RacePoints.NONE.arm("x")).isInstanceOf(UnsupportedOperationException.class);
        assertThatThrownBy(() -> points.await("never-armed")).isInstanceOf(IllegalStateException.class);
    }
}
