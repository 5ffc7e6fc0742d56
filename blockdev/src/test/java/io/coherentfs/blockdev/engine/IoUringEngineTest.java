package io.coherentfs.blockdev.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.IoCallback;
import io.coherentfs.blockdev.KernelSupport;
import io.coherentfs.blockdev.TestImages;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class IoUringEngineTest {

    /**
     * Completions that each submit three more requests make the completion thread publish many
     * more SQEs in one batch than the 8-entry ring holds: they must all be submitted and complete.
     */
    @Test
    void completionThreadCanSubmitMoreThanTheRingHolds() throws Exception {
        assumeTrue(KernelSupport.ioUringAllowed());
        Path image = TestImages.fresh("uring-fanout", 4 << 20);
        int total = 3000;
        DirectDevice.Options options = DirectDevice.Options.DEFAULT.withEngine(IoEngineKind.IO_URING).withQueueDepth(1);
        try (DirectDevice device = DirectDevice.open(image, options);
                AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer buf = pool.allocate(4096)) {
            AtomicInteger submitted = new AtomicInteger(1);
            AtomicReference<IOException> failure = new AtomicReference<>();
            CountDownLatch done = new CountDownLatch(total);
            IoCallback fanOut = new IoCallback() {
                @Override
                public void onComplete(IOException error) {
                    if (error != null) {
                        failure.compareAndSet(null, error);
                    }
                    for (int k = 0; k < 3; k++) {
                        int n = submitted.incrementAndGet();
                        if (n > total) {
                            break;
                        }
                        device.submitRead((n % 1000) * 4096L, buf.segment(), this);
                    }
                    done.countDown();
                }
            };
            device.submitRead(0, buf.segment(), fanOut);
            assertThat(done.await(2, TimeUnit.MINUTES)).as("every request completed").isTrue();
            assertThat(failure.get()).isNull();
        }
    }
}
