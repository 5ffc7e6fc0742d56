package io.coherentfs.blockdev;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@link BlockDevice}'s default asynchronous vectored request: one single-segment request after another, each
 * submitted when the previous one completed; the first failure ends the chain.
 *
 * <p>Concurrency: at most one segment is in flight, so the callback runs once. A segment may
 * complete on the submitting thread (a device that serves requests synchronously) or on a
 * completion thread; {@link #wip} trampolines the former into the running loop instead of
 * recursing once per segment. Only the thread that moved {@code wip} from 0 runs the loop,
 * and the atomic hand-over orders its reads of {@code next}/{@code at} after the previous
 * runner's writes.
 */
final class SegmentChain implements IoCallback {
    private final BlockDevice device;
    private final boolean write;
    private final List<MemorySegment> segments;
    private final IoCallback callback;
    private final AtomicInteger wip = new AtomicInteger();
    private int next;
    private long at;

    SegmentChain(BlockDevice device, boolean write, long offset, List<MemorySegment> segments,
            IoCallback callback) {
        this.device = device;
        this.write = write;
        this.at = offset;
        this.segments = segments;
        this.callback = callback;
    }

    /** Submits the first segment. */
    void start() {
        onComplete(null);
    }

    /** The completion of the previous segment. */
    @Override
    public void onComplete(IOException error) {
        if (error != null) {
            callback.onComplete(error);
            return;
        }
        if (wip.getAndIncrement() != 0) {
            return;  // completed inside the running loop's submit: the loop goes on
        }
        do {
            if (next == segments.size()) {
                callback.onComplete(null);
                return;
            }
            MemorySegment s = segments.get(next++);
            long segmentOffset = at;
            at += s.byteSize();
            if (write) {
                device.submitWrite(segmentOffset, s, this);
            } else {
                device.submitRead(segmentOffset, s, this);
            }
        } while (wip.decrementAndGet() != 0);
    }
}
