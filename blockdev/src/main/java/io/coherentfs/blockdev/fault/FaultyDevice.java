package io.coherentfs.blockdev.fault;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DeviceGeometry;
import io.coherentfs.blockdev.IoCallback;
import io.coherentfs.blockdev.IoVectors;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A wrapper over a real {@link BlockDevice} that injects the failures storage really has, for
 * tests (after Lucene's MockDirectoryWrapper): EIO on the Nth request or on a range, a torn write
 * (only a prefix of its sectors lands), ENOSPC past a limit, and {@link #crash}: a power cut that
 * forgets writes made since the last flush, keeping a random subset and possibly tearing one.
 *
 * <p>It is not a mock: every request that is not failed goes to the real device. To be able to
 * crash, it remembers, per sector ({@code dioOffsetAlign} bytes), the durable content (what the
 * sector held at the last flush) and every write made since, in the order they were submitted.
 *
 * <p>A vectored request is one request to every rule, exactly as a single-segment request over
 * the same range would be: it counts once toward {@link #failNthIo}, fails if its whole range
 * meets a {@link #failRange} or passes {@link #limitSpace}, a {@link #tearNextWrite} tears it at
 * a sector of the range (the landing prefix may end inside a segment), and for {@link #crash} it
 * is one pending write of the concatenated data. It reaches the wrapped device as one vectored
 * request.
 *
 * <p>Concurrency: all bookkeeping is under this object's monitor; IO to the wrapped device runs
 * outside it except the read of a sector's durable content, which must precede the write that
 * overwrites it. A read-write {@link #gate} orders requests against {@link #crash}: a crash waits
 * until no request is inside the real device, so none lands after the cut.
 */
public final class FaultyDevice implements BlockDevice {

    private final BlockDevice inner;
    private final int sector;
    private final AlignedBufferPool pool = new AlignedBufferPool();

    // Guarded by this.
    private long ioCount;
    private long failAtIo = -1;
    private final List<long[]> failRanges = new ArrayList<>();
    private long spaceLimit = Long.MAX_VALUE;
    private int tearNextWriteAfterSectors = -1;
    private boolean crashed;
    /** Sector number -> content at the last flush, for sectors written since. */
    private final TreeMap<Long, byte[]> durable = new TreeMap<>();
    /** Writes since the last flush, in submission order. */
    private final List<PendingWrite> pending = new ArrayList<>();

    /**
     * The power switch. Every request holds the read side while it passes through to the real
     * device (asynchronous ones only try it, so a completion that submits never waits on a
     * crash); {@link #crash} holds the write side, so no request straddles the cut.
     */
    private final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();
    /** Asynchronous requests submitted to the real device and not yet completed; guarded by this. */
    private int inflight;

    private final AtomicLong reads = new AtomicLong();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong flushes = new AtomicLong();

    private static final class PendingWrite {
        final long offset;
        final byte[] data;
        volatile boolean completed;

        PendingWrite(long offset, byte[] data) {
            this.offset = offset;
            this.data = data;
        }
    }

    public FaultyDevice(BlockDevice inner) {
        this.inner = inner;
        this.sector = inner.geometry().dioOffsetAlign();
    }

    /** The wrapped device. */
    public BlockDevice inner() {
        return inner;
    }

    // ---- fault rules ------------------------------------------------------------------------

    /** The {@code n}th read or write from now (1 = the next one) fails with EIO. */
    public synchronized void failNthIo(long n) {
        failAtIo = ioCount + n;
    }

    /** Every read or write overlapping {@code [offset, offset + length)} fails with EIO. */
    public synchronized void failRange(long offset, long length) {
        failRanges.add(new long[] {offset, offset + length});
    }

    /** Writes that reach beyond {@code limit} bytes fail with ENOSPC, as a full thin device does. */
    public synchronized void limitSpace(long limit) {
        spaceLimit = limit;
    }

    /** The next write lands only its first {@code sectors} sectors, then fails with EIO. */
    public synchronized void tearNextWrite(int sectors) {
        tearNextWriteAfterSectors = sectors;
    }

    /** Removes every fault rule (not a crash: use {@link #revive()}). */
    public synchronized void clearFaults() {
        failAtIo = -1;
        failRanges.clear();
        spaceLimit = Long.MAX_VALUE;
        tearNextWriteAfterSectors = -1;
    }

    public long readCount() {
        return reads.get();
    }

    public long writeCount() {
        return writes.get();
    }

    public long flushCount() {
        return flushes.get();
    }

    /** Bytes written since the last flush that a crash could still lose. */
    public synchronized long unflushedWrites() {
        return pending.size();
    }

    // ---- crash ------------------------------------------------------------------------------

    /**
     * Pulls the plug. Each write since the last successful flush independently lands whole, not at
     * all, or (rarely) torn to a prefix of its sectors; flushed writes always survive. The wrapped
     * device is left holding exactly that image, flushed. Afterwards every request fails with EIO
     * until {@link #revive()}, as a dead machine's would.
     */
    public void crash(Random random) throws IOException {
        gate.writeLock().lock();
        try {
            crashLocked(random);
        } finally {
            gate.writeLock().unlock();
        }
    }

    /** Holds the gate's write side: no synchronous request is inside the real device. */
    private void crashLocked(Random random) throws IOException {
        TreeMap<Long, byte[]> image;
        synchronized (this) {
            crashed = true;
            // Requests already submitted finish at the real device; being unflushed, they are in
            // the pending list and their fate is drawn below like any other write's.
            boolean interrupted = false;
            while (inflight > 0) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            image = new TreeMap<>();
            for (Map.Entry<Long, byte[]> e : durable.entrySet()) {
                image.put(e.getKey(), e.getValue().clone());
            }
            for (PendingWrite w : pending) {
                int sectors = w.data.length / sector;
                int keep = switch (random.nextInt(8)) {
                    case 0, 1, 2 -> sectors;                  // landed
                    case 3 -> random.nextInt(sectors + 1);    // torn
                    default -> 0;                             // lost
                };
                for (int i = 0; i < keep; i++) {
                    byte[] s = image.get(w.offset / sector + i);
                    System.arraycopy(w.data, i * sector, s, 0, sector);
                }
            }
            durable.clear();
            pending.clear();
        }
        try (AlignedBuffer buf = pool.allocate(sector)) {
            for (Map.Entry<Long, byte[]> e : image.entrySet()) {
                MemorySegment.copy(e.getValue(), 0, buf.segment(), ValueLayout.JAVA_BYTE, 0, sector);
                inner.write(e.getKey() * sector, buf.segment());
            }
        }
        inner.flush();
    }

    /** After a {@link #crash}, lets requests through again (the machine rebooted). */
    public synchronized void revive() {
        crashed = false;
    }

    // ---- bookkeeping ------------------------------------------------------------------------

    /** Decides the fate of a request; null means pass it through. */
    private synchronized ErrnoException fault(String call, long offset, long length, boolean write) {
        if (crashed) {
            return new ErrnoException(Errno.EIO, call, "device crashed (simulated power cut)");
        }
        ioCount++;
        if (ioCount == failAtIo) {
            failAtIo = -1;
            return new ErrnoException.MediaErrorException(call, "injected failure of IO #" + ioCount);
        }
        for (long[] r : failRanges) {
            if (offset < r[1] && r[0] < offset + length) {
                return new ErrnoException.MediaErrorException(call,
                        "injected bad range [" + r[0] + ", " + r[1] + ") hit at " + offset);
            }
        }
        if (write && offset + length > spaceLimit) {
            return new ErrnoException.NoSpaceException(call, "injected space limit " + spaceLimit);
        }
        return null;
    }

    /**
     * Records a write before it reaches the device: the durable content of every sector it is the
     * first to touch since the last flush, and its data ({@code srcs} concatenated).
     */
    private PendingWrite record(long offset, List<MemorySegment> srcs) throws IOException {
        long length = IoVectors.totalLength(srcs);
        if (!recordable(offset, srcs, length)) {
            return new PendingWrite(offset, new byte[0]); // the device refuses it; nothing to remember
        }
        synchronized (this) {
            long first = offset / sector;
            long count = length / sector;
            try (AlignedBuffer buf = pool.allocate(sector)) {
                for (long s = first; s < first + count; s++) {
                    if (!durable.containsKey(s)) {
                        inner.read(s * sector, buf.segment());
                        durable.put(s, buf.segment().toArray(ValueLayout.JAVA_BYTE));
                    }
                }
            }
            byte[] data = new byte[(int) length];
            int at = 0;
            for (MemorySegment src : srcs) {
                MemorySegment.copy(src, ValueLayout.JAVA_BYTE, 0, data, at, (int) src.byteSize());
                at += (int) src.byteSize();
            }
            PendingWrite w = new PendingWrite(offset, data);
            pending.add(w);
            return w;
        }
    }

    /**
     * Whether the wrapped device will accept a write of {@code srcs} at {@code offset} as far as
     * the shape goes: a write it refuses moves nothing, so it must not become a pending write a
     * crash could land.
     */
    private boolean recordable(long offset, List<MemorySegment> srcs, long length) {
        if (srcs.isEmpty() || srcs.size() > IoVectors.IOV_MAX || length == 0) {
            return false;
        }
        if (offset < 0 || offset % sector != 0 || offset + length > size() || length > Integer.MAX_VALUE) {
            return false;
        }
        int memAlign = geometry().dioMemoryAlign();
        for (MemorySegment src : srcs) {
            if (src.byteSize() == 0 || src.byteSize() % sector != 0 || !src.isNative() || src.address() % memAlign != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * A vectored request with no segments or more than IOV_MAX is malformed rather than an IO:
     * it goes straight to the wrapped device for its EINVAL, uncounted by the fault rules.
     */
    private static boolean malformedCount(List<MemorySegment> segments) {
        return segments.isEmpty() || segments.size() > IoVectors.IOV_MAX;
    }

    /** A flush that started after these writes completed has made them durable. */
    private synchronized void flushed(List<PendingWrite> done) {
        if (crashed) {
            return;  // the cut came first: what the flush covered was decided by crash()
        }
        java.util.Set<PendingWrite> stillListed = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        stillListed.addAll(pending);
        for (PendingWrite w : done) {
            if (!stillListed.contains(w)) {
                continue;  // a concurrent flush that covered it already made it durable
            }
            for (int i = 0; i < w.data.length / sector; i++) {
                byte[] s = durable.get(w.offset / sector + i);
                System.arraycopy(w.data, i * sector, s, 0, sector);
            }
        }
        pending.removeAll(done);
        // Sectors no pending write touches any more need no memory of their durable content.
        java.util.Set<Long> stillPending = new java.util.HashSet<>();
        for (PendingWrite w : pending) {
            for (int i = 0; i < w.data.length / sector; i++) {
                stillPending.add(w.offset / sector + i);
            }
        }
        for (Iterator<Long> it = durable.keySet().iterator(); it.hasNext(); ) {
            if (!stillPending.contains(it.next())) {
                it.remove();
            }
        }
    }

    private synchronized List<PendingWrite> completedWrites() {
        List<PendingWrite> done = new ArrayList<>();
        for (PendingWrite w : pending) {
            if (w.completed) {
                done.add(w);
            }
        }
        return done;
    }

    /** How many sectors of a write may land; -1 for all. Consumes a tear rule. */
    private synchronized int takeTear() {
        int t = tearNextWriteAfterSectors;
        tearNextWriteAfterSectors = -1;
        return t;
    }

    // ---- BlockDevice ------------------------------------------------------------------------

    @Override
    public DeviceGeometry geometry() {
        return inner.geometry();
    }

    @Override
    public boolean isReadOnly() {
        return inner.isReadOnly();
    }

    @Override
    public String engineName() {
        return inner.engineName();
    }

    /** A synchronous request, run while holding the gate's read side. */
    private interface Passage {
        void run() throws IOException;
    }

    private void gated(Passage passage) throws IOException {
        gate.readLock().lock();
        try {
            passage.run();
        } finally {
            gate.readLock().unlock();
        }
    }

    /**
     * Starts an asynchronous request: checks the fault rules inside the gate, counts the request
     * in flight and hands {@code submit} a callback that uncounts it. A request that meets a
     * crash under way fails as the dead device's would.
     */
    private void gatedAsync(String call, long offset, long length, boolean write, IoCallback callback,
            java.util.function.Consumer<IoCallback> submit) {
        if (!gate.readLock().tryLock()) {
            callback.onComplete(new ErrnoException(Errno.EIO, call, "device crashed (simulated power cut)"));
            return;
        }
        try {
            ErrnoException f = fault(call, offset, length, write);
            if (f != null) {
                callback.onComplete(f);
                return;
            }
            synchronized (this) {
                inflight++;
            }
            submit.accept(error -> {
                synchronized (this) {
                    inflight--;
                    notifyAll();
                }
                callback.onComplete(error);
            });
        } finally {
            gate.readLock().unlock();
        }
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        gated(() -> {
            ErrnoException f = fault("pread", offset, dst.byteSize(), false);
            if (f != null) {
                throw f;
            }
            reads.incrementAndGet();
            inner.read(offset, dst);
        });
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        gated(() -> {
            ErrnoException f = fault("pwrite", offset, src.byteSize(), true);
            if (f != null) {
                throw f;
            }
            writes.incrementAndGet();
            int tear = takeTear();
            MemorySegment landing = tornPrefix(src, tear);
            if (landing.byteSize() > 0) {
                PendingWrite w = record(offset, List.of(landing));
                inner.write(offset, landing);
                w.completed = true;
            }
            if (tear >= 0) {
                throw tornWriteError("pwrite", tear);
            }
        });
    }

    @Override
    public void readv(long offset, List<MemorySegment> dsts) throws IOException {
        if (malformedCount(dsts)) {
            inner.readv(offset, dsts);
            return;
        }
        gated(() -> {
            ErrnoException f = fault("preadv", offset, IoVectors.totalLength(dsts), false);
            if (f != null) {
                throw f;
            }
            reads.incrementAndGet();
            inner.readv(offset, dsts);
        });
    }

    @Override
    public void writev(long offset, List<MemorySegment> srcs) throws IOException {
        if (malformedCount(srcs)) {
            inner.writev(offset, srcs);
            return;
        }
        gated(() -> {
            ErrnoException f = fault("pwritev", offset, IoVectors.totalLength(srcs), true);
            if (f != null) {
                throw f;
            }
            writes.incrementAndGet();
            int tear = takeTear();
            List<MemorySegment> landing = tornPrefix(srcs, tear);
            if (!landing.isEmpty()) {
                PendingWrite w = record(offset, landing);
                inner.writev(offset, landing);
                w.completed = true;
            }
            if (tear >= 0) {
                throw tornWriteError("pwritev", tear);
            }
        });
    }

    private MemorySegment tornPrefix(MemorySegment src, int tear) {
        return tear < 0 ? src : src.asSlice(0, Math.min(src.byteSize(), (long) tear * sector));
    }

    private List<MemorySegment> tornPrefix(List<MemorySegment> srcs, int tear) {
        return tear < 0 ? srcs : IoVectors.prefix(srcs, (long) tear * sector);
    }

    private static ErrnoException tornWriteError(String call, int sectors) {
        return new ErrnoException.MediaErrorException(call, "injected torn write: " + sectors + " sectors landed");
    }

    @Override
    public void flush() throws IOException {
        syncDurably(true);
    }

    @Override
    public void fsync() throws IOException {
        syncDurably(false);
    }

    private void syncDurably(boolean dataOnly) throws IOException {
        gated(() -> {
            ErrnoException f = fault(dataOnly ? "fdatasync" : "fsync", 0, 0, false);
            if (f != null) {
                throw f;
            }
            flushes.incrementAndGet();
            List<PendingWrite> done = completedWrites();
            if (dataOnly) {
                inner.flush();
            } else {
                inner.fsync();
            }
            flushed(done);
        });
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        gated(() -> {
            ErrnoException f = fault("discard", offset, length, true);
            if (f != null) {
                throw f;
            }
            inner.discard(offset, length);
        });
    }

    @Override
    public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
        gatedAsync("read", offset, dst.byteSize(), false, callback, done -> {
            reads.incrementAndGet();
            inner.submitRead(offset, dst, done);
        });
    }

    @Override
    public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
        gatedAsync("write", offset, src.byteSize(), true, callback, done -> {
            writes.incrementAndGet();
            int tear = takeTear();
            MemorySegment landing = tornPrefix(src, tear);
            IoCallback finish = tear < 0 ? done
                    : error -> done.onComplete(error != null ? error : tornWriteError("write", tear));
            if (landing.byteSize() == 0) {
                finish.onComplete(null);
                return;
            }
            PendingWrite w;
            try {
                w = record(offset, List.of(landing));
            } catch (IOException e) {
                done.onComplete(e);
                return;
            }
            inner.submitWrite(offset, landing, error -> {
                if (error == null) {
                    w.completed = true;
                }
                finish.onComplete(error);
            });
        });
    }

    @Override
    public void submitReadv(long offset, List<MemorySegment> dsts, IoCallback callback) {
        if (malformedCount(dsts)) {
            inner.submitReadv(offset, dsts, callback);
            return;
        }
        gatedAsync("readv", offset, IoVectors.totalLength(dsts), false, callback, done -> {
            reads.incrementAndGet();
            inner.submitReadv(offset, dsts, done);
        });
    }

    @Override
    public void submitWritev(long offset, List<MemorySegment> srcs, IoCallback callback) {
        if (malformedCount(srcs)) {
            inner.submitWritev(offset, srcs, callback);
            return;
        }
        gatedAsync("writev", offset, IoVectors.totalLength(srcs), true, callback, done -> {
            writes.incrementAndGet();
            int tear = takeTear();
            List<MemorySegment> landing = tornPrefix(srcs, tear);
            IoCallback finish = tear < 0 ? done
                    : error -> done.onComplete(error != null ? error : tornWriteError("writev", tear));
            if (landing.isEmpty()) {
                finish.onComplete(null);
                return;
            }
            PendingWrite w;
            try {
                w = record(offset, landing);
            } catch (IOException e) {
                done.onComplete(e);
                return;
            }
            inner.submitWritev(offset, landing, error -> {
                if (error == null) {
                    w.completed = true;
                }
                finish.onComplete(error);
            });
        });
    }

    @Override
    public void submitFlush(boolean dataOnly, IoCallback callback) {
        gatedAsync(dataOnly ? "fdatasync" : "fsync", 0, 0, false, callback, done -> {
            flushes.incrementAndGet();
            List<PendingWrite> covered = completedWrites();
            inner.submitFlush(dataOnly, error -> {
                if (error == null) {
                    flushed(covered);
                }
                done.onComplete(error);
            });
        });
    }

    /** Closes the wrapped device too. */
    @Override
    public void close() throws IOException {
        try {
            inner.close();
        } finally {
            pool.close();
        }
    }
}
