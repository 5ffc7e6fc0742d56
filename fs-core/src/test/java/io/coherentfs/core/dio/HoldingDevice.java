package io.coherentfs.core.dio;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DeviceGeometry;
import io.coherentfs.blockdev.IoCallback;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link BlockDevice} that passes everything to another one, but can <em>hold</em> the
 * completions of single-segment asynchronous writes ({@link #submitWrite}, what a direct write's
 * pieces use): while holding, the write reaches the inner device but its callback is kept until
 * {@link #release()}, which delivers it on the releasing thread (playing the engine's completion
 * thread). A test can thus keep an AIO direct write "in flight" for as long as it likes, with
 * no sleep. Vectored writes (writeback runs) are never held.
 */
public final class HoldingDevice implements BlockDevice {
    private final BlockDevice inner;
    private boolean holding;
    private final List<Runnable> held = new ArrayList<>();

    public HoldingDevice(BlockDevice inner) {
        this.inner = inner;
    }

    public BlockDevice inner() {
        return inner;
    }

    /** From now on, completions of {@link #submitWrite} are kept until {@link #release()}. */
    public synchronized void hold() {
        holding = true;
    }

    /** Stops holding and delivers every held completion, on this thread. Returns how many. */
    public int release() {
        List<Runnable> run;
        synchronized (this) {
            holding = false;
            run = new ArrayList<>(held);
            held.clear();
        }
        run.forEach(Runnable::run);
        return run.size();
    }

    /** Waits until at least {@code n} completions are held. */
    public synchronized void awaitHeld(int n) throws InterruptedException {
        while (held.size() < n) {
            wait();
        }
    }

    public synchronized int heldCount() {
        return held.size();
    }

    @Override
    public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
        inner.submitWrite(offset, src, error -> {
            synchronized (this) {
                if (holding) {
                    held.add(() -> callback.onComplete(error));
                    notifyAll();
                    return;
                }
            }
            callback.onComplete(error);
        });
    }

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
        return "holding(" + inner.engineName() + ")";
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        inner.read(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        inner.write(offset, src);
    }

    @Override
    public void readv(long offset, List<MemorySegment> dsts) throws IOException {
        inner.readv(offset, dsts);
    }

    @Override
    public void writev(long offset, List<MemorySegment> srcs) throws IOException {
        inner.writev(offset, srcs);
    }

    @Override
    public void flush() throws IOException {
        inner.flush();
    }

    @Override
    public void fsync() throws IOException {
        inner.fsync();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        inner.discard(offset, length);
    }

    @Override
    public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
        inner.submitRead(offset, dst, callback);
    }

    @Override
    public void submitReadv(long offset, List<MemorySegment> dsts, IoCallback callback) {
        inner.submitReadv(offset, dsts, callback);
    }

    @Override
    public void submitWritev(long offset, List<MemorySegment> srcs, IoCallback callback) {
        inner.submitWritev(offset, srcs, callback);
    }

    @Override
    public void submitFlush(boolean dataOnly, IoCallback callback) {
        inner.submitFlush(dataOnly, callback);
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
