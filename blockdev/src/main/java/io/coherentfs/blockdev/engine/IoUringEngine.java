package io.coherentfs.blockdev.engine;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.locks.ReentrantLock;

/**
 * io_uring spoken directly: io_uring_setup and io_uring_enter through syscall(2), the rings
 * mmapped by us, no liburing.
 *
 * <p>Concurrency design. Any thread may submit. A submitter takes {@link #submitLock}, fills the
 * next SQE, publishes the SQ tail with a release store and calls io_uring_enter(to_submit) — so
 * without SQPOLL the kernel has consumed the SQ before the lock is released and the SQ is empty
 * at the start of every submission. One completion thread ("io-uring-N") blocks in
 * io_uring_enter(GETEVENTS, min_complete=1), reads the CQ tail with an acquire load, copies the
 * new CQEs out, publishes the CQ head with a release store and then runs the completions.
 *
 * <p>A completion that submits (a device continuing a short transfer, a chain keeping its queue
 * full) enters the kernel at once, one io_uring_enter per request, as fio does with its default
 * iodepth_batch_submit=1. Holding those SQEs back to hand them over together with the next wait
 * (what this engine did first) turned a queue of 32 into a sawtooth: the device got ~20 requests
 * per kick and went idle while the completion thread ran the batch, and 4 KiB random reads at
 * QD32 ran at 0.75× fio on the same image file (session 5, device-bench; 0.9–1.0× once eager).
 *
 * <p>Back-pressure: at most {@code queueDepth} requests from other threads are in flight; those
 * threads wait on {@link #inflight}. The completion thread never waits (it is the one that frees
 * permits); what it submits is bounded by the completions it runs, and the CQ, twice the SQ and
 * protected by IORING_FEAT_NODROP, absorbs the excess.
 *
 * <p>Request ids (user_data) index {@link #slots}; guarded by {@link #slotLock}. A vectored
 * request's struct iovec array belongs to its id ({@link #iovecs}): the submitter fills it after
 * taking the id and before publishing the SQE, and it is reused only once the id is freed, i.e.
 * after the kernel posted the request's CQE — the kernel may read the array as late as when it
 * issues the request, not just at io_uring_enter. The arrays come from {@link #iovecArena}, one
 * per id, grown in powers of two and never shrunk: memory is bounded by the peak number of
 * requests in flight times the largest vector each id carried.
 */
public final class IoUringEngine implements IoEngine {
    // io_uring ABI (include/uapi/linux/io_uring.h).
    private static final int IORING_OP_NOP = 0;
    private static final int IORING_OP_READV = 1;
    private static final int IORING_OP_WRITEV = 2;
    private static final int IORING_OP_FSYNC = 3;
    private static final int IORING_OP_READ = 22;
    private static final int IORING_OP_WRITE = 23;
    private static final int IORING_FSYNC_DATASYNC = 1;
    private static final int IORING_ENTER_GETEVENTS = 1;
    private static final int IORING_FEAT_SINGLE_MMAP = 1;
    private static final int IORING_FEAT_NODROP = 1 << 1;
    private static final int IORING_FEAT_RW_CUR_POS = 1 << 3;
    private static final long IORING_OFF_SQES = 0x10000000L;
    private static final int SQE_SIZE = 64;
    private static final int CQE_SIZE = 16;
    private static final long SHUTDOWN = -1L;

    private static final VarHandle INT = JAVA_INT.varHandle();

    private final int ringFd;
    private final MemorySegment ring;
    private final MemorySegment sqes;
    private final long sqHeadOff, sqTailOff, sqArrayOff;
    private final int sqMask, sqEntries;
    private final long cqHeadOff, cqTailOff, cqesOff;
    private final int cqMask;
    private final Semaphore inflight;
    private final int queueDepth;
    private final Thread completer;

    private final ReentrantLock submitLock = new ReentrantLock();
    /** Guarded by submitLock: the next SQ tail we publish. */
    private int sqTail;
    /** Guarded by submitLock. */
    private boolean closing;

    private final Object slotLock = new Object();
    /** Guarded by slotLock: request id -> completion (null when free). */
    private final ArrayList<Slot> slots = new ArrayList<>();
    /** Guarded by slotLock: free ids, a stack. */
    private int[] freeIds = new int[0];
    private int freeCount;
    /** Guarded by slotLock: request id -> its struct iovec array (null until a vectored request used the id). */
    private MemorySegment[] iovecs = new MemorySegment[0];
    /** Holds every iovec array; closed with the engine, after the last completion. */
    private final Arena iovecArena;

    private record Slot(Completion completion, boolean heldPermit) {}

    private IoUringEngine(int queueDepth) throws ErrnoException {
        this.queueDepth = queueDepth;
        int entries = Integer.highestOneBit(Math.max(queueDepth, 8) * 2 - 1);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = arena.allocate(120, 8);
            ringFd = (int) LinuxSyscalls.syscall("io_uring_setup", LinuxSyscalls.SYS_IO_URING_SETUP,
                    entries, params.address(), 0, 0, 0, 0);
            int features = params.get(JAVA_INT, 20);
            int needed = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS;
            if ((features & needed) != needed) {
                LinuxSyscalls.close(ringFd);
                throw new UnsupportedOperationException(
                        "kernel io_uring lacks single mmap, nodrop or read/write opcodes (features 0x"
                                + Integer.toHexString(features) + "); Linux 5.6 or newer is needed");
            }
            sqEntries = params.get(JAVA_INT, 0);
            int cqEntries = params.get(JAVA_INT, 4);
            // struct io_sqring_offsets at 40, struct io_cqring_offsets at 80.
            sqHeadOff = params.get(JAVA_INT, 40);
            sqTailOff = params.get(JAVA_INT, 44);
            long sqMaskOff = params.get(JAVA_INT, 48);
            sqArrayOff = params.get(JAVA_INT, 64);
            cqHeadOff = params.get(JAVA_INT, 80);
            cqTailOff = params.get(JAVA_INT, 84);
            long cqMaskOff = params.get(JAVA_INT, 88);
            cqesOff = params.get(JAVA_INT, 100);
            long ringSize = Math.max(sqArrayOff + 4L * sqEntries, cqesOff + (long) CQE_SIZE * cqEntries);
            int prot = LinuxSyscalls.PROT_READ | LinuxSyscalls.PROT_WRITE;
            int flags = LinuxSyscalls.MAP_SHARED | LinuxSyscalls.MAP_POPULATE;
            ring = LinuxSyscalls.mmap(ringSize, prot, flags, ringFd, 0);
            sqes = LinuxSyscalls.mmap((long) SQE_SIZE * sqEntries, prot, flags, ringFd, IORING_OFF_SQES);
            sqMask = ring.get(JAVA_INT, sqMaskOff);
            cqMask = ring.get(JAVA_INT, cqMaskOff);
            sqTail = (int) INT.getAcquire(ring, sqTailOff);
        }
        inflight = new Semaphore(queueDepth);
        iovecArena = Arena.ofShared();
        completer = new Thread(this::completionLoop, "io-uring-" + ringFd);
        completer.setDaemon(true);
    }

    /**
     * Sets up a ring for {@code queueDepth} requests in flight.
     *
     * @throws ErrnoException where the kernel refuses io_uring (ENOSYS, EPERM under
     *     kernel.io_uring_disabled or seccomp, ENOMEM under a locked-memory limit)
     * @throws UnsupportedOperationException where the kernel's io_uring is too old
     */
    public static IoUringEngine start(int queueDepth) throws ErrnoException {
        if (queueDepth < 1) {
            throw new IllegalArgumentException("queue depth must be at least 1, got " + queueDepth);
        }
        IoUringEngine engine = new IoUringEngine(queueDepth);
        engine.completer.start();
        return engine;
    }

    @Override
    public String name() {
        return "io_uring";
    }

    /** The completion thread: the context every {@link Completion} of this engine runs in. */
    public Thread completionThread() {
        return completer;
    }

    public int queueDepth() {
        return queueDepth;
    }

    @Override
    public void submitRead(int fd, long offset, MemorySegment buffer, Completion completion) {
        submit(IORING_OP_READ, fd, offset, buffer.address(), (int) buffer.byteSize(), 0, completion);
    }

    @Override
    public void submitWrite(int fd, long offset, MemorySegment buffer, Completion completion) {
        submit(IORING_OP_WRITE, fd, offset, buffer.address(), (int) buffer.byteSize(), 0, completion);
    }

    @Override
    public void submitReadv(int fd, long offset, List<MemorySegment> buffers, Completion completion) {
        submitVectored(IORING_OP_READV, fd, offset, buffers, completion);
    }

    @Override
    public void submitWritev(int fd, long offset, List<MemorySegment> buffers, Completion completion) {
        submitVectored(IORING_OP_WRITEV, fd, offset, buffers, completion);
    }

    @Override
    public void submitFsync(int fd, boolean dataOnly, Completion completion) {
        submit(IORING_OP_FSYNC, fd, 0, 0, 0, dataOnly ? IORING_FSYNC_DATASYNC : 0, completion);
    }

    /** READV/WRITEV: the SQE's addr is the iovec array, its len the number of iovecs. */
    private void submitVectored(int opcode, int fd, long offset, List<MemorySegment> buffers, Completion completion) {
        int n = buffers.size();
        if (n < 1 || n > LinuxSyscalls.IOV_MAX) {
            throw new IllegalArgumentException(n + " iovecs, 1 to " + LinuxSyscalls.IOV_MAX + " allowed");
        }
        submit(opcode, fd, offset, 0, n, 0, completion, buffers);
    }

    private void submit(int opcode, int fd, long offset, long addr, int len, int opFlags, Completion completion) {
        submit(opcode, fd, offset, addr, len, opFlags, completion, null);
    }

    /** With {@code vector} non-null, {@code addr} is replaced by the id's iovec array describing it. */
    private void submit(int opcode, int fd, long offset, long addr, int len, int opFlags, Completion completion,
            List<MemorySegment> vector) {
        boolean onCompleter = Thread.currentThread() == completer;
        boolean permit;
        if (onCompleter) {
            permit = inflight.tryAcquire();
        } else {
            inflight.acquireUninterruptibly();
            permit = true;
        }
        long id = allocateId(new Slot(completion, permit));
        long sqeAddr = addr;
        if (vector != null) {
            try {
                MemorySegment iov = iovecsFor(id, vector.size());
                LinuxSyscalls.putIovecs(iov, vector, 0);
                sqeAddr = iov.address();
            } catch (RuntimeException e) {
                freeId(id);
                if (permit) {
                    inflight.release();
                }
                throw e;
            }
        }
        boolean entered;
        try {
            entered = publish(opcode, fd, offset, sqeAddr, len, opFlags, id, onCompleter, false);
        } catch (RuntimeException e) {
            freeId(id);
            if (permit) {
                inflight.release();
            }
            throw e;
        }
        if (!entered) {
            enterAll(onCompleter);
        }
    }

    /**
     * Publishes one SQE, and enters the kernel in the same critical section; false when the
     * kernel pushed back and the SQE is published but not yet consumed. A thread other than the
     * completion thread never waits for the kernel while holding submitLock: it lets go and
     * yields, so the completion thread — which may need submitLock for a request of its own
     * before it can drain the CQ — is never blocked by a thread waiting for it.
     */
    private boolean publish(int opcode, int fd, long offset, long addr, int len, int opFlags, long userData,
            boolean onCompleter, boolean evenWhenClosing) {
        while (true) {
            submitLock.lock();
            try {
                if (closing && !evenWhenClosing) {
                    throw new IllegalStateException("io_uring engine is closed");
                }
                if (sqFull()) {
                    enterSubmit(onCompleter);
                }
                if (!sqFull()) {
                    publishSqe(opcode, fd, offset, addr, len, opFlags, userData);
                    return enterSubmit(onCompleter);
                }
            } finally {
                submitLock.unlock();
            }
            Thread.yield();
        }
    }

    /** Enters the kernel until every published SQE is consumed, yielding without submitLock in between. */
    private void enterAll(boolean onCompleter) {
        while (true) {
            submitLock.lock();
            try {
                if (enterSubmit(onCompleter)) {
                    return;
                }
            } finally {
                submitLock.unlock();
            }
            Thread.yield();
        }
    }

    /** Holds submitLock. */
    private boolean sqFull() {
        return sqTail - (int) INT.getAcquire(ring, sqHeadOff) >= sqEntries;
    }

    /**
     * Fills the SQE at the tail, which has room, and publishes it: the SQE and array entry are
     * written with plain stores, then the tail with a release store, so the kernel's acquire load
     * of the tail sees them. Holds submitLock.
     */
    private void publishSqe(int opcode, int fd, long offset, long addr, int len, int opFlags, long userData) {
        int index = sqTail & sqMask;
        long sqe = (long) index * SQE_SIZE;
        // Little-endian (x86-64, arm64). struct io_uring_sqe: opcode u8 @0, flags u8 @1, ioprio u16 @2, fd s32 @4, off u64 @8,
        // addr u64 @16, len u32 @24, op flags u32 @28, user_data u64 @32, the rest zero.
        sqes.set(JAVA_LONG, sqe, ((long) fd << 32) | (opcode & 0xff));
        sqes.set(JAVA_LONG, sqe + 8, offset);
        sqes.set(JAVA_LONG, sqe + 16, addr);
        sqes.set(JAVA_LONG, sqe + 24, ((long) opFlags << 32) | (len & 0xffffffffL));
        sqes.set(JAVA_LONG, sqe + 32, userData);
        sqes.set(JAVA_LONG, sqe + 40, 0L);
        sqes.set(JAVA_LONG, sqe + 48, 0L);
        sqes.set(JAVA_LONG, sqe + 56, 0L);
        ring.set(JAVA_INT, sqArrayOff + 4L * index, index);
        sqTail++;
        INT.setRelease(ring, sqTailOff, sqTail);
    }

    /**
     * Hands every published SQE to the kernel; true once the SQ is empty. When the kernel pushes
     * back (EBUSY: completions it could not post yet; EAGAIN: short of memory), the completion
     * thread drains the CQ itself, into {@link #reapedIds}, and tries again, so it never waits for
     * itself; any other thread returns false, leaving its SQEs published, to wait without the
     * lock. Holds submitLock.
     */
    private boolean enterSubmit(boolean onCompleter) {
        while (true) {
            int pending = sqTail - (int) INT.getAcquire(ring, sqHeadOff);
            if (pending == 0) {
                return true;
            }
            try {
                LinuxSyscalls.syscall("io_uring_enter", LinuxSyscalls.SYS_IO_URING_ENTER,
                        ringFd, pending, 0, 0, 0, 0);
            } catch (ErrnoException e) {
                if (!transientEnterFailure(e)) {
                    throw new IllegalStateException("io_uring_enter failed: " + e.getMessage(), e);
                }
                if (!onCompleter) {
                    return false;
                }
                reapCq();
            }
        }
    }

    private static boolean transientEnterFailure(ErrnoException e) {
        int err = e.errno();
        return err == Errno.EINTR.code() || err == Errno.EAGAIN.code() || err == Errno.EBUSY.code();
    }

    private long allocateId(Slot slot) {
        synchronized (slotLock) {
            if (freeCount > 0) {
                int id = freeIds[--freeCount];
                slots.set(id, slot);
                return id;
            }
            slots.add(slot);
            return slots.size() - 1;
        }
    }

    /**
     * The iovec array of request {@code id}, holding at least {@code count} iovecs. The caller
     * owns {@code id}, so nobody else touches the array until the id is freed at completion.
     */
    private MemorySegment iovecsFor(long id, int count) {
        synchronized (slotLock) {
            int i = (int) id;
            if (i >= iovecs.length) {
                iovecs = java.util.Arrays.copyOf(iovecs, Math.max(16, Math.max(i + 1, iovecs.length * 2)));
            }
            MemorySegment iov = iovecs[i];
            if (iov == null || iov.byteSize() < count * LinuxSyscalls.IOVEC_BYTES) {
                long capacity = Math.max(8, Integer.highestOneBit(count - 1) << 1);
                iov = iovecArena.allocate(capacity * LinuxSyscalls.IOVEC_BYTES, 8);
                iovecs[i] = iov;
            }
            return iov;
        }
    }

    private int outstanding() {
        synchronized (slotLock) {
            return slots.size() - freeCount;
        }
    }

    private Slot freeId(long id) {
        synchronized (slotLock) {
            Slot slot = slots.set((int) id, null);
            if (freeCount == freeIds.length) {
                freeIds = java.util.Arrays.copyOf(freeIds, Math.max(16, freeIds.length * 2));
            }
            freeIds[freeCount++] = (int) id;
            return slot;
        }
    }

    // Completion-thread state: CQEs copied out of the ring and not yet run. Callbacks may append
    // (through enterSubmit -> reapCq) while the loop runs earlier entries.
    private long[] reapedIds = new long[64];
    private int[] reapedResults = new int[64];
    private int reapedCount;

    /** Copies every posted CQE out and frees its ring slot. Completion thread only. */
    private void reapCq() {
        int head = ring.get(JAVA_INT, cqHeadOff);   // only this thread writes the CQ head
        int tail = (int) INT.getAcquire(ring, cqTailOff);
        int n = tail - head;
        if (reapedCount + n > reapedIds.length) {
            int size = Integer.highestOneBit(reapedCount + n) * 2;
            reapedIds = java.util.Arrays.copyOf(reapedIds, size);
            reapedResults = java.util.Arrays.copyOf(reapedResults, size);
        }
        for (int i = 0; i < n; i++) {
            long cqe = cqesOff + (long) ((head + i) & cqMask) * CQE_SIZE;
            reapedIds[reapedCount] = ring.get(JAVA_LONG, cqe);
            reapedResults[reapedCount] = ring.get(JAVA_INT, cqe + 8);
            reapedCount++;
        }
        INT.setRelease(ring, cqHeadOff, tail);
    }

    private void completionLoop() {
        boolean shutdown = false;
        while (!shutdown || outstanding() > 0) {
            try {
                LinuxSyscalls.syscall("io_uring_enter", LinuxSyscalls.SYS_IO_URING_ENTER,
                        ringFd, 0, 1, IORING_ENTER_GETEVENTS, 0, 0);
            } catch (ErrnoException e) {
                if (!transientEnterFailure(e)) {
                    throw new IllegalStateException("io_uring_enter(GETEVENTS) failed: " + e.getMessage(), e);
                }
            }
            reapCq();
            for (int i = 0; i < reapedCount; i++) {
                if (reapedIds[i] == SHUTDOWN) {
                    shutdown = true;
                    continue;
                }
                Slot slot = freeId(reapedIds[i]);
                if (slot.heldPermit()) {
                    inflight.release();
                }
                try {
                    slot.completion().complete(reapedResults[i]);
                } catch (Throwable t) {
                    System.getLogger(IoUringEngine.class.getName())
                            .log(System.Logger.Level.ERROR, "IO completion threw", t);
                }
            }
            reapedCount = 0;
        }
    }

    @Override
    public void close() {
        // Wait for the requests of other threads; the completion loop then runs until the ones it
        // submitted itself are done too, and only then sees the shutdown NOP as its last word.
        inflight.acquireUninterruptibly(queueDepth);
        submitLock.lock();
        try {
            if (closing) {
                return;
            }
            closing = true;
        } finally {
            submitLock.unlock();
        }
        submitNop(SHUTDOWN);
        boolean interrupted = false;
        while (completer.isAlive()) {
            try {
                completer.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        try {
            LinuxSyscalls.munmap(sqes);
            LinuxSyscalls.munmap(ring);
            LinuxSyscalls.close(ringFd);
        } catch (ErrnoException e) {
            throw new IllegalStateException("releasing the io_uring failed: " + e.getMessage(), e);
        } finally {
            // Every request completed (the completion thread ended), so no SQE points here any more.
            iovecArena.close();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void submitNop(long userData) {
        if (!publish(IORING_OP_NOP, -1, 0, 0, 0, 0, userData, false, true)) {
            enterAll(false);
        }
    }
}
