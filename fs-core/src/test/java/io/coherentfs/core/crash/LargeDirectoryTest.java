package io.coherentfs.core.crash;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.journal.MetaCache;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.DirEntry;
import io.coherentfs.core.vfs.Vfs;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.BitSet;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * 100,000 entries in one directory through the {@link Vfs}: create, look each up, read the
 * directory in small batches, unlink all. Lookups must descend the directory-entry tree, not scan
 * the directory: the metadata blocks a lookup touches (metadata-cache hits + misses) at 100k
 * entries stay within 3x of what they are at 1k entries (a scan would be ~100x). Block counts, not
 * time.
 */
class LargeDirectoryTest {
    private static final int N = 100_000;
    private static final int SMALL = 1_000;

    private static byte[] name(int i) {
        return ("e" + Integer.toString(i, 36)).getBytes(StandardCharsets.UTF_8);
    }

    private static int index(byte[] name) {
        return Integer.parseInt(new String(name, 1, name.length - 1, StandardCharsets.UTF_8), 36);
    }

    /** Metadata blocks touched (cache hits + misses) by looking up entries {@code [0, n)}; {max, total}. */
    private static long[] lookupCost(CoherentFs fs, long dir, int n, long[] inos) throws Exception {
        MetaCache cache = fs.meta().cache();
        long max = 0;
        long total = 0;
        for (int i = 0; i < n; i++) {
            long before = cache.hits() + cache.misses();
            Attr a = fs.lookup(dir, name(i));
            long cost = cache.hits() + cache.misses() - before;
            fs.forget(a.ino(), 1);
            assertThat(a.ino()).as("lookup of entry %d", i).isEqualTo(inos[i]);
            max = Math.max(max, cost);
            total += cost;
        }
        return new long[] {max, total};
    }

    /** Commits and checkpoints, so no background journal work touches the cache while lookups are counted. */
    private static void quiesce(CoherentFs fs) throws Exception {
        fs.sync();
        fs.meta().journal().checkpoint();
    }

    @Test
    void hundredThousandEntriesInOneDirectory() throws Exception {
        Path image = Path.of("target/test-images/crash-large-directory.img").toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 2L << 30);  // sparse; 2 GiB gives an 8 MiB journal
        JournalOptions quiet = JournalOptions.DEFAULTS.withCommitInterval(Duration.ZERO)
                .withCheckpointInterval(Duration.ZERO);
        try (DirectDevice device = DirectDevice.open(image)) {
            CoherentFs.mkfs(device, "large-directory", UUID.randomUUID(), Caller.ROOT);
            try (CoherentFs fs = CoherentFs.open(device, new CoherentFs.Options(false, quiet))) {
                long t0 = System.nanoTime();
                long dir = fs.mkdir(Vfs.ROOT, "big".getBytes(StandardCharsets.UTF_8), 0755, Caller.ROOT).ino();
                long[] inos = new long[N];
                long[] small = null;
                for (int i = 0; i < N; i++) {
                    if (i == SMALL) {
                        quiesce(fs);
                    }
                    Attr a = fs.mknod(dir, name(i), 0100644, 0, Caller.ROOT);
                    inos[i] = a.ino();
                    fs.forget(a.ino(), 1);
                    if (i == SMALL - 1) {
                        quiesce(fs);
                        small = lookupCost(fs, dir, SMALL, inos);
                    }
                }
                quiesce(fs);
                long t1 = System.nanoTime();
                long smallMax = small[0];
                double smallAvg = small[1] / (double) SMALL;
                long[] large = lookupCost(fs, dir, N, inos);
                double largeAvg = large[1] / (double) N;
                long t2 = System.nanoTime();
                System.out.printf("LargeDirectoryTest: metadata blocks per lookup: %.2f avg (max %d) at %d entries, "
                        + "%.2f avg (max %d) at %d entries%n", smallAvg, smallMax, SMALL, largeAvg, large[0], N);
                assertThat(largeAvg).as("blocks per lookup at %d entries vs %.2f at %d", N, smallAvg, SMALL)
                        .isLessThanOrEqualTo(3 * smallAvg);
                assertThat(large[0]).as("most blocks one lookup touched at %d entries (max %d at %d)", N, smallMax, SMALL)
                        .isLessThanOrEqualTo(Math.max(3 * smallMax, 16));

                // readdir in small batches: every name exactly once, with its inode.
                BitSet seen = new BitSet(N);
                long cookie = 0;
                int batch = 7;
                int calls = 0;
                int dots = 0;
                while (true) {
                    List<DirEntry> got = fs.readdir(dir, cookie, batch);
                    if (got.isEmpty()) {
                        break;
                    }
                    assertThat(got.size()).isLessThanOrEqualTo(batch);
                    assertThat(++calls).as("readdir calls").isLessThanOrEqualTo(N / batch + 10);
                    for (DirEntry e : got) {
                        String n = e.nameString();
                        if (n.equals(".") || n.equals("..")) {
                            dots++;
                            continue;
                        }
                        int i = index(e.name());
                        assertThat(seen.get(i)).as("entry %s listed twice", n).isFalse();
                        seen.set(i);
                        assertThat(e.ino()).as("inode of %s", n).isEqualTo(inos[i]);
                    }
                    cookie = got.get(got.size() - 1).nextCookie();
                }
                assertThat(dots).isEqualTo(2);
                assertThat(seen.cardinality()).isEqualTo(N);

                long t3 = System.nanoTime();
                // Unlink everything (creation order: the directory-entry tree is visited in hash order, at random).
                for (int i = 0; i < N; i++) {
                    fs.unlink(dir, name(i));
                }
                long t4 = System.nanoTime();
                System.out.printf("LargeDirectoryTest: %d entries: create %.1f s, lookup %.1f s, readdir (batches of %d)"
                        + " %.1f s, unlink %.1f s%n", N, (t1 - t0) / 1e9, (t2 - t1) / 1e9, batch, (t3 - t2) / 1e9,
                        (t4 - t3) / 1e9);
                List<DirEntry> left = fs.readdir(dir, 0, 100);
                assertThat(left).extracting(DirEntry::nameString).containsExactly(".", "..");
                assertThat(fs.getattr(dir).nlink()).isEqualTo(2);
                assertThatThrownBy(() -> fs.lookup(dir, name(12345))).isInstanceOfSatisfying(ErrnoException.class,
                        e -> assertThat(e.errno()).isEqualTo(2));
                assertThatThrownBy(() -> fs.getattr(inos[777])).isInstanceOf(ErrnoException.class);
                fs.rmdir(Vfs.ROOT, "big".getBytes(StandardCharsets.UTF_8));
            }
        } finally {
            Files.deleteIfExists(image);
        }
    }
}
