package io.coherentfs.core.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBufferPool;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** {@link PageIndex} against a TreeMap model, and its one-folio-per-index rule under racing inserts. */
class PageIndexTest {
    @Test
    void agreesWithATreeMapUnderRandomOperations() throws Exception {
        try (AlignedBufferPool pool = new AlignedBufferPool()) {
            PageCache cache = new PageCache(pool, 1 << 20);
            FolioMapping mapping = cache.newMapping(1);
            io.coherentfs.blockdev.AlignedBuffer page = pool.allocate(4096); // shared: these folios never hold data
            for (long seed = 1; seed <= 5; seed++) {
                Random random = new Random(seed);
                PageIndex index = new PageIndex();
                TreeMap<Long, Folio> model = new TreeMap<>();
                for (int op = 0; op < 20_000; op++) {
                    // indices cluster near 0 and spread up to 2^32 pages, so the tree grows several levels
                    long i = random.nextInt(4) == 0 ? random.nextLong(1L << 32) : random.nextInt(5000);
                    String where = "seed " + seed + " op " + op + " index " + i;
                    switch (random.nextInt(5)) {
                        case 0, 1 -> {
                            Folio f = new Folio(mapping, i, page);
                            Folio there = index.putIfAbsent(i, f);
                            assertThat(there).as(where).isSameAs(model.get(i));
                            model.putIfAbsent(i, f);
                        }
                        case 2 -> {
                            Folio f = model.get(i);
                            boolean removed = index.remove(i, f != null && random.nextBoolean() ? f : new Folio(mapping, i, page));
                            if (removed) {
                                model.remove(i);
                            }
                            assertThat(index.get(i)).as(where).isSameAs(model.get(i));
                        }
                        case 3 -> {
                            Long c = model.ceilingKey(i);
                            assertThat(index.ceiling(i)).as(where).isEqualTo(c == null ? -1 : c);
                        }
                        default -> {
                            long to = i + random.nextInt(3000);
                            List<Long> seen = new ArrayList<>();
                            index.forEach(i, to, (k, f) -> {
                                assertThat(f).isSameAs(model.get(k));
                                return seen.add(k);
                            });
                            assertThat(seen).as(where).containsExactlyElementsOf(model.subMap(i, to).keySet());
                        }
                    }
                    assertThat(index.get(i)).as(where).isSameAs(model.get(i));
                }
            }
        }
    }

    @Test
    void racingInsertsLeaveExactlyOneFolioPerIndex() throws Exception {
        try (AlignedBufferPool pool = new AlignedBufferPool()) {
            FolioMapping mapping = new PageCache(pool, 1 << 20).newMapping(1);
            io.coherentfs.blockdev.AlignedBuffer page = pool.allocate(4096); // shared: these folios never hold data
            PageIndex index = new PageIndex();
            int threads = 4;
            Map<Long, Folio> winners = new ConcurrentHashMap<>();
            AtomicInteger wins = new AtomicInteger();
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> all = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                all.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (long i = 0; i < 20_000; i += 1 + (i % 7)) {
                        long at = i * 4099 % (1L << 30); // forces root growth while others insert
                        Folio mine = new Folio(mapping, at, page);
                        if (index.putIfAbsent(at, mine) == null) {
                            wins.incrementAndGet();
                            assertThat(winners.putIfAbsent(at, mine)).isNull();
                        }
                    }
                }));
            }
            start.countDown();
            for (Thread t : all) {
                t.join();
            }
            assertThat(wins.get()).isEqualTo(winners.size());
            winners.forEach((at, f) -> assertThat(index.get(at)).isSameAs(f));
            long[] count = {0};
            index.forEach(0, Long.MAX_VALUE, (k, f) -> ++count[0] > 0);
            assertThat(count[0]).isEqualTo(winners.size());
        }
    }
}
