package io.coherentfs.core;

import io.coherentfs.core.cache.PageCache;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.concurrent.atomic.LongAdder;

/**
 * The engine's meters, registered once per mount in the registry the mount was given. Each is a
 * function of a counter the engine keeps anyway ({@link LongAdder}s and the cache's byte
 * counts), so the hot paths pay nothing for metrics.
 */
final class EngineMetrics {
    private EngineMetrics() {
    }

    static void register(MeterRegistry r, CoherentFs fs, PageCache cache, BufferedIo buffered, Writeback writeback,
            DirectIo direct) {
        Gauge.builder("coherentfs.cache.bytes", cache, PageCache::totalBytes).baseUnit("bytes")
                .description("bytes of all cached folios").register(r);
        Gauge.builder("coherentfs.cache.dirty.bytes", cache, PageCache::dirtyBytes).baseUnit("bytes")
                .description("bytes of dirty folios").register(r);
        Gauge.builder("coherentfs.cache.writeback.bytes", cache, PageCache::writebackBytes).baseUnit("bytes")
                .description("bytes of folios under writeback").register(r);
        Gauge.builder("coherentfs.cache.budget.bytes", cache, PageCache::budgetBytes).baseUnit("bytes")
                .description("the clean-page budget (cache_size)").register(r);
        FunctionCounter.builder("coherentfs.cache.evictions", cache, PageCache::evictions)
                .description("clean folios evicted to stay within the budget").register(r);
        counter(r, "coherentfs.cache.hits", buffered.hits, "buffered reads served from a cached page");
        counter(r, "coherentfs.cache.misses", buffered.misses, "buffered reads that had to fill a page");
        counter(r, "coherentfs.cache.readahead.pages", buffered.readaheadPages, "pages read ahead of a miss");
        counter(r, "coherentfs.delalloc.released.blocks", buffered.delallocReleased,
                "delayed-allocation blocks given back (short writes, truncate, punch)");
        Gauge.builder("coherentfs.delalloc.reserved.blocks", buffered.delallocReservation(),
                res -> res.remaining()).description("blocks promised to delayed allocations").register(r);
        counter(r, "coherentfs.writeback.pages", writeback.pagesWritten, "folios written back");
        counter(r, "coherentfs.writeback.runs", writeback.runsWritten, "runs of consecutive folios written back");
        counter(r, "coherentfs.writeback.allocated.blocks", writeback.blocksAllocated,
                "blocks chosen for delayed allocations at writeback");
        counter(r, "coherentfs.writeback.throttled", writeback.throttled, "writes that waited above the dirty limit");
        counter(r, "coherentfs.dio.reads", direct.reads, "direct reads");
        counter(r, "coherentfs.dio.writes", direct.writes, "direct writes");
        counter(r, "coherentfs.dio.completions.deferred", direct.deferredCompletions,
                "asynchronous direct-write completions handed to a dio-done worker (M1)");
        counter(r, "coherentfs.dio.completions.inline", direct.inlineCompletions,
                "asynchronous direct-write completions run where the IO ended");
        counter(r, "coherentfs.dio.invalidated.folios", direct.foliosInvalidated, "folios dropped by direct-IO invalidation");
        counter(r, "coherentfs.dio.laundered.folios", direct.foliosLaundered,
                "dirty folios written back before invalidation instead of being dropped (M6)");
        counter(r, "coherentfs.dio.invalidation.failures", direct.invalidationFailures,
                "folios a direct write could not invalidate (reported as EIO at the next fsync)");
        counter(r, "coherentfs.addlock.block.waits", direct.blockWaits, "direct writes that waited for page adds to drain (M3)");
        counter(r, "coherentfs.dio.recursion.detections", direct.recursionDetections,
                "direct writes whose source faulted on the file being written (M3)");
        counter(r, "coherentfs.dio.retries", direct.retries, "direct writes retried after a fault dropped their locks (M3)");
        FunctionCounter.builder("coherentfs.journal.commits", fs, f -> f.meta().journal().commitCount())
                .description("journal transactions committed").register(r);
    }

    private static void counter(MeterRegistry r, String name, LongAdder adder, String description) {
        FunctionCounter.builder(name, adder, LongAdder::sum).description(description).register(r);
    }
}
