package io.coherentfs.blockdev;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The contract for a device that implements only the single-segment calls (as fs-core's test and
 * fsck devices do), so that {@link BlockDevice}'s vectored defaults are what is tested. Every
 * other asynchronous request is served synchronously on the submitting thread, as fsck's overlay
 * does, so one chain of segments completes partly inline and partly on the engine's thread.
 */
class DefaultVectoredIoTest extends BlockDeviceContract {
    @Override
    protected BlockDevice open(Path image) throws IOException {
        return new SingleSegmentOnly(DirectDevice.open(image));
    }

    private static final class SingleSegmentOnly implements BlockDevice {
        private final BlockDevice inner;
        private final AtomicLong submissions = new AtomicLong();

        SingleSegmentOnly(BlockDevice inner) {
            this.inner = inner;
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
            return "single-segment(" + inner.engineName() + ")";
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

        private boolean inline() {
            return submissions.incrementAndGet() % 2 == 0;
        }

        @Override
        public void submitRead(long offset, MemorySegment dst, IoCallback callback) {
            if (!inline()) {
                inner.submitRead(offset, dst, callback);
                return;
            }
            try {
                inner.read(offset, dst);
                callback.onComplete(null);
            } catch (IOException e) {
                callback.onComplete(e);
            }
        }

        @Override
        public void submitWrite(long offset, MemorySegment src, IoCallback callback) {
            if (!inline()) {
                inner.submitWrite(offset, src, callback);
                return;
            }
            try {
                inner.write(offset, src);
                callback.onComplete(null);
            } catch (IOException e) {
                callback.onComplete(e);
            }
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
}
