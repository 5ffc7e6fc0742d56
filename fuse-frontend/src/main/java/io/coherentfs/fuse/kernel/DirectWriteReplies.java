package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.foreign.Arena;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Answers the WRITEs of direct handles after telling the kernel to drop the written range
 * from its page cache (FUSE_NOTIFY_INVAL_INODE, then the reply: the writer learns of its
 * completion only once no stale page of the range is left, see {@link KernelOperations}).
 *
 * <p>Why a thread of its own: the invalidation waits for pages that are locked or under
 * writeback in the range, and such a page is released only when a worker answers its READ or
 * write-back WRITE. A worker waiting in the notification could be the last free one; this
 * thread waiting there blocks no worker, so the workers always drain what it waits for.
 *
 * <p>One thread, FIFO: replies go out in the order the writes finished in the engine. Started
 * with the session, stopped after the last worker: what is still queued then is sent anyway,
 * and refused by the kernel (ENODEV, ignored) since the connection is gone.
 */
final class DirectWriteReplies {
    private static final Logger LOG = Logger.getLogger(DirectWriteReplies.class.getName());

    private record Pending(long unique, long nodeid, long offset, int written) {}

    private static final Pending STOP = new Pending(0, 0, 0, 0);

    private final FuseChannel channel;
    private final LinkedBlockingQueue<Pending> queue = new LinkedBlockingQueue<>();
    private final Thread thread;

    DirectWriteReplies(FuseChannel channel) {
        this.channel = channel;
        this.thread = Thread.ofPlatform().name("fuse-dio-replies").unstarted(this::run);
    }

    void start() {
        thread.start();
    }

    /** Queues the reply to WRITE {@code unique}, which wrote {@code written} bytes at {@code offset} of {@code nodeid}. */
    void reply(long unique, long nodeid, long offset, int written) {
        queue.add(new Pending(unique, nodeid, offset, written));
    }

    void stop() throws InterruptedException {
        queue.add(STOP);
        thread.join();
    }

    private void run() {
        try (Arena arena = Arena.ofConfined()) {
            Reply reply = new Reply(channel, arena);
            while (true) {
                Pending p;
                try {
                    p = queue.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
                if (p == STOP) {
                    return;
                }
                try {
                    channel.invalidateInode(p.nodeid(), p.offset(), p.written());
                } catch (ErrnoException e) {
                    // ENOENT: the kernel has no such inode cached, nothing to drop
                    if (e.errno() != Errno.ENOENT.code()) {
                        LOG.log(Level.WARNING, "cache invalidation after a direct write failed: " + e.getMessage(), e);
                    }
                }
                reply.begin(p.unique());
                reply.payload().set(JAVA_LONG, 0, Integer.toUnsignedLong(p.written()));
                try {
                    reply.send(FuseAbi.WRITE_OUT_BYTES);
                } catch (ErrnoException e) {
                    LOG.log(Level.WARNING, "reply to a direct write failed: " + e.getMessage(), e);
                }
            }
        }
    }
}
