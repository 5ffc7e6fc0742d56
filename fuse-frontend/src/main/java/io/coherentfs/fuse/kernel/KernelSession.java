package io.coherentfs.fuse.kernel;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.Vfs;
import io.coherentfs.fuse.FuseMetrics;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Transport 2: one FUSE mount served by speaking the protocol on /dev/fuse ourselves.
 *
 * <h2>Threads</h2>
 * {@code threads} platform threads (they block in read(2), so not virtual ones), each with its
 * own buffers, each reading a whole request, answering it and reading the next. Enough of them
 * that the kernel's parallel requests (ASYNC_DIO, readahead, PARALLEL_DIROPS) are served in
 * parallel; the engine does its own locking. Beside them: one thread answers direct writes after
 * their invalidation ({@link DirectWriteReplies}), four push read-around clusters into the
 * kernel's page cache and one answers the requests their gate deferred ({@link KernelCacheFill}).
 * None of those is ever waited for by a worker.
 *
 * <h2>Forgets take effect before the next request</h2>
 * The kernel queues FORGET inside unlink(2) (the last iput of an unlinked inode) and hands
 * queued forgets to readers before any other request (fs/fuse/dev.c fuse_dev_do_read). The
 * engine frees an unlinked inode's blocks when its last lookup is forgotten, so a create that
 * follows an unlink must not overtake that forget on another worker (it would see ENOSPC on a
 * full filesystem that ext4 would already have freed). Hence workers read one at a time under
 * {@link #readLock}, and a worker that reads FORGET or BATCH_FORGET applies it before letting
 * the next worker read. Every other request is answered after the lock is released, in
 * parallel.
 *
 * <h2>The request buffer and O_DIRECT</h2>
 * Each worker's request buffer is page-aligned and the worker reads at offset
 * {@code 4096 - 80}: a FUSE_WRITE's data follows fuse_in_header (40 bytes) and fuse_write_in
 * (40 bytes, since 7.9), so it lands on a 4096-byte boundary and a direct handle's write reaches
 * the engine's O_DIRECT path without a copy. The read length is at least
 * {@code 80 + max_write} as fs/fuse/dev.c requires (else EINVAL).
 *
 * <h2>Life cycle</h2>
 * {@link #run}: open /dev/fuse, mount(2), serve until every worker has seen ENODEV (the mount
 * is gone: umount, umount2(MNT_DETACH) from a signal handler, or an abort through
 * /sys/fs/fuse/connections), then release the handles the kernel never released and run
 * {@code onDestroy} once. For fuseblk the kernel sends FUSE_DESTROY from umount and waits for
 * our answer, so DESTROY runs {@code onDestroy} (the engine's clean close) before replying and
 * {@code umount} returns only once the image is clean.
 */
public final class KernelSession {
    private static final Logger LOG = Logger.getLogger(KernelSession.class.getName());

    public static final int DEFAULT_THREADS = 16;
    /** Where in its page-aligned buffer a worker reads: a WRITE's payload then starts at 4096. */
    static final int REQUEST_AT = 4096 - FuseAbi.WRITE_PAYLOAD_OFFSET;
    /** Bytes a worker's read(2) may fill: any request, the largest being a 1 MiB WRITE. */
    static final int READ_LENGTH = InitNegotiation.MAX_WRITE + 4096;

    private final Vfs vfs;
    private final KernelMount mount;
    private final int threads;
    private final boolean keepCache;
    private final FuseMetrics metrics;
    private final boolean allowRoot;
    private final int owner;
    private final AtomicBoolean destroyed = new AtomicBoolean();
    /** Held by the one worker in read(2), and while it applies a forget it read. */
    private final ReentrantLock readLock = new ReentrantLock();
    private volatile Runnable onDestroy = () -> { };
    private volatile InitNegotiation negotiated;
    private KernelOperations operations;
    private DirectWriteReplies directWriteReplies;
    private KernelCacheFill cacheFill;
    private FuseChannel channel;
    private final MeterRegistry registry;
    private volatile boolean storeGate = true;
    private volatile boolean directWriteInvalidation = true;
    private volatile RacePoints race = RacePoints.NONE;
    private final CompletableFuture<Void> mounted = new CompletableFuture<>();

    /**
     * @param keepCache whether buffered opens keep the kernel's cached pages (README "The kernel's
     *     page cache")
     * @param allowRoot {@code allow_root}: the kernel has no such option (the mount is
     *     allow_other); as libfuse does, requests of users other than root and the mount's owner
     *     are refused with EACCES, except those on files they already have open
     */
    public KernelSession(Vfs vfs, MeterRegistry registry, KernelMount mount, int threads, boolean keepCache,
            boolean allowRoot) {
        this.allowRoot = allowRoot;
        this.owner = LinuxSyscalls.getuid();
        this.vfs = vfs;
        this.mount = mount;
        this.threads = threads;
        this.keepCache = keepCache;
        this.registry = registry;
        this.metrics = new FuseMetrics(registry, () -> operations == null ? 0 : operations.openFiles());
    }

    /**
     * {@code unsafe_no_kernel_store_gate} (race tests only) passes false: the kernel read-around
     * then stores without waiting out writers ({@link KernelCacheFill}). Before {@link #run}.
     */
    public void storeGate(boolean on) {
        this.storeGate = on;
    }

    /**
     * {@code unsafe_no_direct_write_invalidation} (race tests only) passes false: a direct write
     * is answered without FUSE_NOTIFY_INVAL_INODE first ({@link DirectWriteReplies}). Before {@link #run}.
     */
    public void directWriteInvalidation(boolean on) {
        this.directWriteInvalidation = on;
    }

    /** Interleaving points for race tests; production keeps {@link RacePoints#NONE}. Before {@link #run}. */
    public void racePoints(RacePoints points) {
        this.race = points;
    }

    /** Completes once mount(2) has succeeded (the workers are starting); fails if the mount fails. */
    public CompletableFuture<Void> mounted() {
        return mounted;
    }

    /** Runs {@code r} once when the session ends: at FUSE_DESTROY, else after the last request. */
    public void onDestroy(Runnable r) {
        this.onDestroy = r;
    }

    /** Mounts and serves until the mount is gone. Throws if the mount itself fails. */
    public void run() throws IOException {
        channel = FuseChannel.open();
        try {
            directWriteReplies = new DirectWriteReplies(channel);
            cacheFill = new KernelCacheFill(vfs, channel, registry, metrics, storeGate, race);
            operations = new KernelOperations(vfs, metrics, directWriteInvalidation ? directWriteReplies : null,
                    cacheFill, race, keepCache);
            try {
                mount.mount(channel);
            } catch (ErrnoException e) {
                mounted.completeExceptionally(e);
                throw new IOException("cannot mount " + mount.source() + " on " + mount.target() + " (" + mount.type()
                        + "): " + e.getMessage(), e);
            }
            LOG.info("mounted " + mount.type() + " " + mount.source() + " on " + mount.target() + " with " + threads
                    + " threads (flags 0x" + Long.toHexString(mount.flags()) + ", " + mount.data() + ")");
            directWriteReplies.start();
            cacheFill.start();
            List<Thread> workers = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                Thread t = Thread.ofPlatform().name("fuse-" + i).unstarted(this::serve);
                workers.add(t);
                t.start();
            }
            mounted.complete(null);
            for (Thread t : workers) {
                joinUninterruptibly(t);
            }
            try {
                cacheFill.stop();
                directWriteReplies.stop();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            LOG.info("FUSE session ended");
        } finally {
            try {
                if (operations != null) {
                    operations.releaseAll();
                }
                destroy();
            } finally {
                channel.close();
            }
        }
    }

    private static void joinUninterruptibly(Thread t) {
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Runs onDestroy the first time only. */
    private void destroy() {
        if (destroyed.compareAndSet(false, true)) {
            onDestroy.run();
        }
    }

    /** One worker: read, answer, repeat until ENODEV. */
    private void serve() {
        // Shared, not confined: the engine's IO completion threads copy into and out of these.
        try (Arena arena = Arena.ofShared()) {
            MemorySegment requestBuffer = arena.allocate(REQUEST_AT + READ_LENGTH, 4096);
            MemorySegment readInto = requestBuffer.asSlice(REQUEST_AT, READ_LENGTH);
            KernelOperations.Buffers buffers = new KernelOperations.Buffers(new Reply(channel, arena),
                    arena.allocate(InitNegotiation.MAX_WRITE, 4096));
            while (true) {
                int n;
                FuseRequest request;
                readLock.lock();
                try {
                    try {
                        n = channel.read(readInto);
                    } catch (ErrnoException e) {
                        LOG.log(Level.SEVERE, "reading /dev/fuse failed; this worker stops: " + e.getMessage(), e);
                        return;
                    }
                    if (n < 0) {
                        return; // ENODEV: the mount is gone
                    }
                    try {
                        request = FuseRequest.parse(readInto, n);
                        if (request.opcode() == FuseAbi.FORGET || request.opcode() == FuseAbi.BATCH_FORGET) {
                            handle(request, buffers); // no reply; applied before anyone reads on
                            continue;
                        }
                    } catch (ErrnoException | RuntimeException e) {
                        LOG.log(Level.SEVERE, "malformed FUSE request ignored: " + e, e);
                        continue;
                    }
                } finally {
                    readLock.unlock();
                }
                try {
                    handle(request, buffers);
                } catch (ErrnoException e) {
                    LOG.log(Level.WARNING, "FUSE request failed: " + e.getMessage(), e);
                } catch (RuntimeException e) {
                    // a bug of ours in decoding or replying: the worker must survive it
                    LOG.log(Level.SEVERE, "FUSE request failed: " + e, e);
                    try {
                        if (!buffers.reply().sent()) {
                            buffers.reply().error(Errno.EIO.code());
                        }
                    } catch (ErrnoException | RuntimeException again) {
                        LOG.log(Level.WARNING, "cannot answer the failed request: " + again, again);
                    }
                }
            }
        }
    }

    private void handle(FuseRequest r, KernelOperations.Buffers b) throws ErrnoException {
        Reply out = b.reply();
        out.begin(r.unique());
        switch (r.opcode()) {
            case FuseAbi.INIT -> init(r, out);
            case FuseAbi.DESTROY -> {
                LOG.info("FUSE_DESTROY: closing before the kernel lets umount return");
                try {
                    cacheFill.stop(); // its threads read the engine, which closes now
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                operations.releaseAll();
                destroy();
                out.ok();
            }
            default -> {
                if (negotiated == null) {
                    out.error(Errno.EIO.code()); // fs/fuse sends nothing before INIT is answered
                    return;
                }
                if (allowRoot && r.uid() != 0 && r.uid() != owner && !openFileOperation(r.opcode())) {
                    out.error(Errno.EACCES.code());
                    return;
                }
                operations.dispatch(r, b);
                if (!out.sent()) {
                    LOG.severe("no reply to opcode " + r.opcode() + "; answering EIO");
                    out.error(Errno.EIO.code());
                }
            }
        }
    }

    /** What libfuse lets anyone do under allow_root (fuse_lowlevel.c): work on already open files. */
    private static boolean openFileOperation(int opcode) {
        return switch (opcode) {
            case FuseAbi.READ, FuseAbi.WRITE, FuseAbi.FSYNC, FuseAbi.RELEASE, FuseAbi.READDIR, FuseAbi.FSYNCDIR,
                    FuseAbi.RELEASEDIR, FuseAbi.NOTIFY_REPLY, FuseAbi.READDIRPLUS, FuseAbi.FORGET,
                    FuseAbi.BATCH_FORGET, FuseAbi.INTERRUPT -> true;
            default -> false;
        };
    }

    private void init(FuseRequest r, Reply out) throws ErrnoException {
        InitNegotiation n = InitNegotiation.decide(r.body());
        if (n.error() != 0) {
            LOG.severe("the kernel speaks FUSE " + n.major() + "." + n.minor() + "; coherentfs needs 7."
                    + FuseAbi.MIN_MINOR + " or newer");
            out.error(n.error());
            return;
        }
        int size = n.encode(out.payload());
        if (!n.versionOnly()) {
            negotiated = n;
            LOG.info("FUSE_INIT: " + n);
        }
        out.send(size);
    }
}
