package io.coherentfs.core.journal;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A real sparse image under target/test-images, opened O_DIRECT behind a {@link FaultyDevice},
 * with a journal region and helpers to write and check self-describing block contents: a block
 * written by change {@code tag} holds (tag, block number, a pattern derived from both), so a
 * reader can tell which change's image it holds and whether it is whole.
 */
final class JournalRig implements AutoCloseable {
    static final int BLOCK = 4096;
    private static final AtomicLong SEQUENCE = new AtomicLong();
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final Path image;
    final long journalStart;
    final long journalLength;
    final AlignedBufferPool pool = new AlignedBufferPool();
    FaultyDevice device;
    MetaCache cache;
    Journal journal;

    private JournalRig(Path image, long journalStart, long journalLength) {
        this.image = image;
        this.journalStart = journalStart;
        this.journalLength = journalLength;
    }

    /** A fresh image of {@code blocks} blocks with a formatted journal at [start, start+length). */
    static JournalRig create(String name, long blocks, long start, long length) throws IOException {
        Path path = Path.of("target", "test-images",
                "journal-" + name + "-" + ProcessHandle.current().pid() + "-" + SEQUENCE.incrementAndGet() + ".img")
                .toAbsolutePath();
        Files.deleteIfExists(path);
        ImageFiles.createSparse(path, blocks * BLOCK);
        JournalRig rig = new JournalRig(path, start, length);
        rig.device = new FaultyDevice(DirectDevice.open(path));
        Journal.format(rig.device, start, length);
        return rig;
    }

    /** Opens (replays) the journal with a fresh cache. */
    Journal open(JournalOptions options) throws IOException {
        cache = new MetaCache(device, pool, 64);
        journal = Journal.open(device, journalStart, journalLength, cache, options);
        return journal;
    }

    /** Closes journal and cache, ignoring failures (after a crash they are expected). */
    void closeQuietly() {
        if (journal != null) {
            try {
                journal.close();
            } catch (IOException | RuntimeException ignored) {
                // a crashed device fails the final commit; the journal then aborts
            }
            journal = null;
        }
        if (cache != null) {
            cache.close();
            cache = null;
        }
    }

    /** Fills {@code seg} with the image of change {@code tag} (>= 1) for {@code block}. */
    static void fill(MemorySegment seg, long tag, long block) {
        seg.set(LONG, 0, tag);
        seg.set(LONG, 8, block);
        long x = tag * 0x9E3779B97F4A7C15L ^ block * 0xC2B2AE3D27D4EB4FL;
        for (long off = 16; off < BLOCK; off += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            seg.set(LONG, off, x);
        }
    }

    /**
     * The change tag whose image {@code seg} holds for {@code block}: 0 for an all-zero block, -1
     * for anything else that is not exactly one change's image (torn, mixed, misplaced).
     */
    static long tagOf(MemorySegment seg, long block) {
        long tag = seg.get(LONG, 0);
        if (tag == 0) {
            for (long off = 0; off < BLOCK; off += 8) {
                if (seg.get(LONG, off) != 0) {
                    return -1;
                }
            }
            return 0;
        }
        if (tag < 0 || seg.get(LONG, 8) != block) {
            return -1;
        }
        MemorySegment expected = MemorySegment.ofArray(new byte[BLOCK]);
        fill(expected, tag, block);
        return expected.mismatch(seg) == -1 ? tag : -1;
    }

    /** The tag each home block holds on the device (read past the cache). */
    long[] readTags(BlockDevice dev, long[] blocks) throws IOException {
        long[] tags = new long[blocks.length];
        try (AlignedBuffer buf = pool.allocate(BLOCK)) {
            for (int i = 0; i < blocks.length; i++) {
                dev.read(blocks[i] * BLOCK, buf.segment());
                tags[i] = tagOf(buf.segment(), blocks[i]);
            }
        }
        return tags;
    }

    /** One handle that writes change {@code tag} into every block of {@code blocks}. */
    static long writeChange(Journal journal, long tag, long... blocks) throws IOException {
        try (Handle h = journal.begin(blocks.length)) {
            for (long b : blocks) {
                try (MetaBuffer mb = h.getWrite(b)) {
                    fill(mb.segment(), tag, b);
                }
            }
            return h.sequence();
        }
    }

    @Override
    public void close() throws IOException {
        closeQuietly();
        try {
            device.close();
        } finally {
            pool.close();
            Files.deleteIfExists(image);
        }
    }
}
