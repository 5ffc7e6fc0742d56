package io.coherentfs.blockdev.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.KernelSupport;
import io.coherentfs.blockdev.TestImages;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The engines' vectored requests, below the device: one submission moves every segment (the
 * completion reports all the bytes, not the first segment's), and the io_uring engine's per-id
 * iovec arrays, reused and grown as vectors of different lengths come and go, never mix up two
 * requests.
 */
class VectoredEngineTest {
    private static final int BLOCK = 4096;

    @ParameterizedTest
    @EnumSource(value = IoEngineKind.class, names = {"IO_URING", "THREAD_POOL"})
    void oneSubmissionMovesEverySegmentAndIovecArraysAreNotShared(IoEngineKind kind) throws Exception {
        if (kind == IoEngineKind.IO_URING) {
            assumeTrue(KernelSupport.ioUringAllowed());
        }
        Path image = TestImages.fresh("vectored-engine-" + kind, 16 << 20);
        int requests = 96;
        int maxSegments = 40;
        // The device only lends its descriptor; the engine under test is a second one, small
        // enough that ids and their iovec arrays are reused many times over.
        try (DirectDevice device = DirectDevice.open(image, DirectDevice.Options.DEFAULT.withEngine(IoEngineKind.THREAD_POOL));
                IoEngine engine = IoEngines.start(kind, 3);
                AlignedBufferPool pool = new AlignedBufferPool()) {
            Random r = new Random(17);
            List<AlignedBuffer> all = new ArrayList<>();
            try {
                List<List<MemorySegment>> written = new ArrayList<>();
                List<CompletableFuture<Long>> results = new ArrayList<>();
                for (int i = 0; i < requests; i++) {
                    int n = 1 + r.nextInt(maxSegments);
                    List<MemorySegment> segs = new ArrayList<>();
                    for (int k = 0; k < n; k++) {
                        AlignedBuffer b = pool.allocate(BLOCK);
                        all.add(b);
                        b.segment().fill((byte) (i * 7 + k));
                        segs.add(b.segment());
                    }
                    written.add(segs);
                    CompletableFuture<Long> f = new CompletableFuture<>();
                    engine.submitWritev(device.fd(), (long) i * maxSegments * BLOCK, segs, f::complete);
                    results.add(f);
                }
                for (int i = 0; i < requests; i++) {
                    assertThat(results.get(i).get(60, TimeUnit.SECONDS)).as("bytes written by request " + i)
                            .isEqualTo((long) written.get(i).size() * BLOCK);
                }
                List<List<MemorySegment>> read = new ArrayList<>();
                results.clear();
                for (int i = 0; i < requests; i++) {
                    List<MemorySegment> segs = new ArrayList<>();
                    for (int k = 0; k < written.get(i).size(); k++) {
                        AlignedBuffer b = pool.allocate(BLOCK);
                        all.add(b);
                        segs.add(b.segment());
                    }
                    read.add(segs);
                    CompletableFuture<Long> f = new CompletableFuture<>();
                    engine.submitReadv(device.fd(), (long) i * maxSegments * BLOCK, segs, f::complete);
                    results.add(f);
                }
                for (int i = 0; i < requests; i++) {
                    assertThat(results.get(i).get(60, TimeUnit.SECONDS)).as("bytes read by request " + i)
                            .isEqualTo((long) written.get(i).size() * BLOCK);
                    for (int k = 0; k < written.get(i).size(); k++) {
                        assertThat(read.get(i).get(k).mismatch(written.get(i).get(k)))
                                .as("request %d segment %d", i, k).isEqualTo(-1L);
                    }
                }
            } finally {
                all.forEach(AlignedBuffer::close);
            }
        }
    }

    /**
     * Requests submitted from completions are published in batches and entered together (on the
     * io_uring completion thread): each must still carry its own iovecs when the kernel reads them.
     */
    @ParameterizedTest
    @EnumSource(value = IoEngineKind.class, names = {"IO_URING", "THREAD_POOL"})
    void vectoredRequestsSubmittedFromCompletionsKeepTheirOwnIovecs(IoEngineKind kind) throws Exception {
        if (kind == IoEngineKind.IO_URING) {
            assumeTrue(KernelSupport.ioUringAllowed());
        }
        Path image = TestImages.fresh("vectored-engine-fanout-" + kind, 16 << 20);
        int requests = 400;
        int maxSegments = 8;
        try (DirectDevice device = DirectDevice.open(image, DirectDevice.Options.DEFAULT.withEngine(IoEngineKind.THREAD_POOL));
                IoEngine engine = IoEngines.start(kind, 1);
                AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer check = pool.allocate((long) maxSegments * BLOCK)) {
            List<AlignedBuffer> all = new ArrayList<>();
            try {
                List<List<MemorySegment>> vectors = new ArrayList<>();
                for (int i = 0; i < requests; i++) {
                    List<MemorySegment> segs = new ArrayList<>();
                    for (int k = 0; k < 1 + i % maxSegments; k++) {
                        AlignedBuffer b = pool.allocate(BLOCK);
                        all.add(b);
                        b.segment().fill((byte) (i + k));
                        segs.add(b.segment());
                    }
                    vectors.add(segs);
                }
                long[] results = new long[requests];
                java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(requests);
                java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
                class FanOut {
                    void submitNext() {
                        int i = next.getAndIncrement();
                        if (i >= requests) {
                            return;
                        }
                        engine.submitWritev(device.fd(), (long) i * maxSegments * BLOCK, vectors.get(i), result -> {
                            results[i] = result;
                            submitNext();  // two more from the completion context, published together
                            submitNext();
                            done.countDown();
                        });
                    }
                }
                new FanOut().submitNext();
                assertThat(done.await(2, TimeUnit.MINUTES)).as("every request completed").isTrue();
                for (int i = 0; i < requests; i++) {
                    List<MemorySegment> segs = vectors.get(i);
                    assertThat(results[i]).as("bytes written by request " + i).isEqualTo((long) segs.size() * BLOCK);
                    MemorySegment got = check.segment().asSlice(0, (long) segs.size() * BLOCK);
                    device.read((long) i * maxSegments * BLOCK, got);
                    for (int k = 0; k < segs.size(); k++) {
                        assertThat(got.asSlice((long) k * BLOCK, BLOCK).mismatch(segs.get(k)))
                                .as("request %d segment %d", i, k).isEqualTo(-1L);
                    }
                }
            } finally {
                all.forEach(AlignedBuffer::close);
            }
        }
    }
}
