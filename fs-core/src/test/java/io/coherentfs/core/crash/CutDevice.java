package io.coherentfs.core.crash;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DeviceGeometry;
import io.coherentfs.blockdev.IoCallback;
import io.coherentfs.blockdev.fault.FaultyDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A pass-through in front of a {@link FaultyDevice} that pulls the plug at the Nth request from
 * now, on the thread making it and before the request reaches the device: a power cut in the
 * middle of whatever filesystem operation issued that request. Every request still goes to the
 * real (faulty) device, which fails it once it has crashed.
 *
 * <p>Only synchronous requests trigger the cut (a crash waits for asynchronous requests in
 * flight, which a completion thread must not do); asynchronous ones are counted and passed on.
 */
final class CutDevice implements BlockDevice {
    private final FaultyDevice faulty;
    private final AtomicLong requests = new AtomicLong();
    private final AtomicBoolean cut = new AtomicBoolean();
    private volatile long cutAt = Long.MAX_VALUE;
    private volatile Random cutRandom;

    CutDevice(FaultyDevice faulty) {
        this.faulty = faulty;
    }

    FaultyDevice faulty() {
        return faulty;
    }

    /** Requests made so far (all kinds). */
    long requests() {
        return requests.get();
    }

    /** The {@code n}th synchronous request from now (1 = the next) crashes the device with {@code random}. */
    void cutAtRequest(long n, Random random) {
        cutRandom = random;
        cut.set(false);
        cutAt = requests.get() + n;
    }

    /** True once an armed cut has happened. */
    boolean hasCut() {
        return cut.get();
    }

    void disarm() {
        cutAt = Long.MAX_VALUE;
    }

    private void before() throws IOException {
        long n = requests.incrementAndGet();
        if (n >= cutAt && cut.compareAndSet(false, true)) {
            cutAt = Long.MAX_VALUE;
            faulty.crash(cutRandom);
        }
    }

    @Override
    public DeviceGeometry geometry() {
        return faulty.geometry();
    }

    @Override
    public boolean isReadOnly() {
        return faulty.isReadOnly();
    }

    @Override
    public String engineName() {
        return faulty.engineName();
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        before();
        faulty.read(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        before();
        faulty.write(offset, src);
    }

    @Override
    public void readv(long offset, List<MemorySegment> dsts) throws IOException {
        before();
        faulty.readv(offset, dsts);
    }

    @Override
    public void writev(long offset, List<MemorySegment> srcs) throws IOException {
        before();
        faulty.writev(offset, srcs);
    }

    @Override
    public void flush() throws IOException {
        before();
        faulty.flush();
    }

    @Override
    public void fsync() throws IOException {
        before();
        faulty.fsync();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        before();
        faulty.discard(offset, length);
    }

    @Override
    public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
        requests.incrementAndGet();
        faulty.submitRead(offset, dst, callback);
    }

    @Override
    public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
        requests.incrementAndGet();
        faulty.submitWrite(offset, src, callback);
    }

    @Override
    public void submitReadv(long offset, List<MemorySegment> dsts, IoCallback callback) {
        requests.incrementAndGet();
        faulty.submitReadv(offset, dsts, callback);
    }

    @Override
    public void submitWritev(long offset, List<MemorySegment> srcs, IoCallback callback) {
        requests.incrementAndGet();
        faulty.submitWritev(offset, srcs, callback);
    }

    @Override
    public void submitFlush(boolean dataOnly, IoCallback callback) {
        requests.incrementAndGet();
        faulty.submitFlush(dataOnly, callback);
    }

    /** Closes the faulty device and the real one under it. */
    @Override
    public void close() throws IOException {
        faulty.close();
    }
}
