package io.coherentfs.core.sync;

import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Named interleaving points for deterministic race tests (DESIGN.md sections 3 and 8).
 *
 * <p>Production code calls {@link #hit(String)} at the places where a race matters ("after the
 * pre-write invalidation, before the pages are pinned"). Tests {@link #arm} a point to stop the
 * thread that reaches it until {@link #release released}, or to run code inline on that thread,
 * and {@link #await} a point to learn that some thread has reached it. No sleeps: every wait is
 * on a latch another thread opens.
 *
 * <h2>Why an instance, not a static</h2>
 * One {@code RacePoints} is held by each filesystem engine and handed to the structures that
 * hit points. Tests that run in parallel each build their own engine with their own
 * {@code RacePoints}, so arming a point in one test cannot stop a thread of another. Production
 * passes {@link #NONE}, whose {@code hit} is a field read and a return.
 *
 * <h2>Concurrency design</h2>
 * Armed points live in a {@link ConcurrentHashMap}; each {@link Point} owns two one-shot latches
 * ({@code reached}, {@code released}). {@code hit} on an unarmed name never blocks. A point armed
 * to block stops <em>every</em> thread that reaches it until released; once released it lets
 * everyone through until re-armed. Re-arming replaces the point (any thread still blocked on
 * the old point stays blocked until the old point is released: release before re-arming).
 * A thread interrupted while stopped at a point keeps its interrupt status and goes on.
 */
public final class RacePoints implements AutoCloseable {
    /** The production instance: never armed, {@code hit} does nothing. */
    public static final RacePoints NONE = new RacePoints(false);

    private final boolean armable;
    private final ConcurrentHashMap<String, Point> points = new ConcurrentHashMap<>();

    private RacePoints(boolean armable) {
        this.armable = armable;
    }

    /** A fresh set of points that tests can arm; hand it to the engine under test. */
    public static RacePoints armable() {
        return new RacePoints(true);
    }

    /** Production code: a thread reaches {@code name}. Blocks only if a test armed it to. */
    public void hit(String name) {
        if (!armable) {
            return;
        }
        Point p = points.get(name);
        if (p != null) {
            p.hit();
        }
    }

    /** Arms {@code name} so that a thread reaching it stops until {@link #release(String)}. */
    public void arm(String name) {
        armPoint(name, null, true);
    }

    /**
     * Arms {@code name} so that a thread reaching it runs {@code action} inline (on that thread,
     * with whatever locks it holds) and goes on. The point still counts as reached.
     */
    public void arm(String name, Runnable action) {
        armPoint(name, Objects.requireNonNull(action, "action"), false);
    }

    private void armPoint(String name, Runnable action, boolean block) {
        if (!armable) {
            throw new UnsupportedOperationException("RacePoints.NONE cannot be armed");
        }
        points.put(Objects.requireNonNull(name, "name"), new Point(action, block));
    }

    /** Waits until some thread has reached {@code name} (armed, in either way). */
    public void await(String name) throws InterruptedException {
        point(name).reached.await();
    }

    /** Lets every thread stopped at {@code name}, and every later one, go on. */
    public void release(String name) {
        point(name).released.countDown();
    }

    /** How many times {@code name} was reached since it was armed. */
    public long hits(String name) {
        return point(name).hits.get();
    }

    /** Disarms {@code name}, releasing any thread stopped there. */
    public void disarm(String name) {
        Point p = points.remove(name);
        if (p != null) {
            p.released.countDown();
        }
    }

    /** Releases and disarms every point, so no thread stays stopped after a test. */
    @Override
    public void close() {
        points.keySet().forEach(this::disarm);
    }

    private Point point(String name) {
        Point p = points.get(name);
        if (p == null) {
            throw new IllegalStateException("race point not armed: " + name);
        }
        return p;
    }

    private static final class Point {
        final Runnable action;
        final CountDownLatch reached = new CountDownLatch(1);
        final CountDownLatch released;
        final AtomicLong hits = new AtomicLong();

        Point(Runnable action, boolean block) {
            this.action = action;
            this.released = new CountDownLatch(block ? 1 : 0);
        }

        void hit() {
            hits.incrementAndGet();
            reached.countDown();
            if (action != null) {
                action.run();
            }
            try {
                released.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
