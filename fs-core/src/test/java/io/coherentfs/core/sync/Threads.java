package io.coherentfs.core.sync;

import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;

/** Test helpers shared by the concurrency tests: start a thread with a result, and wait (by spinning, no sleep) until it parks. */
public final class Threads {
    private Threads() {}

    public record Started<T>(Thread thread, CompletableFuture<T> result) {}

    public static <T> Started<T> start(String name, Callable<T> body) {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().name(name).unstarted(() -> {
            try {
                result.complete(body.call());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        t.start();
        return new Started<>(t, result);
    }

    /**
     * Spins until {@code t} is parked (WAITING). Bounded only by the test's {@code @Timeout}; fails
     * fast if the thread ends instead.
     */
    public static void awaitParked(Thread t) {
        while (t.getState() != Thread.State.WAITING) {
            if (t.getState() == Thread.State.TERMINATED) {
                throw new AssertionError(t.getName() + " ended instead of waiting");
            }
            Thread.onSpinWait();
        }
    }
}
