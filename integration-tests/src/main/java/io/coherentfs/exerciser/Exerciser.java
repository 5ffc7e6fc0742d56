package io.coherentfs.exerciser;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import io.coherentfs.blockdev.engine.IoUringEngine;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A randomized coherence exerciser in the manner of fsx: one file, several descriptors on it, and
 * an in-memory shadow of what the file must hold.
 *
 * <p>The descriptors: two buffered ones (plain {@code O_RDWR}, through the kernel's page cache),
 * one {@code O_DIRECT} one (on coherentfs: the engine's direct path), a {@code MAP_SHARED} mapping
 * of the whole size range made through the first buffered descriptor, and an io_uring through
 * which batches of reads and writes go to the direct and the buffered descriptors with several in
 * flight. Operations: reads and writes through each path, truncate up and down, fallocate in
 * every mode Linux filesystems commonly implement, fsync/fdatasync, msync, close and reopen of a
 * descriptor, munmap and mmap again, and a full read of the file. Every read is compared byte for
 * byte with the shadow (its length too: a read crossing the end of file must stop there), and the
 * size (statx) after every operation that writes, truncates or allocates, and every 8th.
 *
 * <p>Determinism: one thread issues everything, every choice comes from one {@link
 * SplittableRandom} seeded by {@code --seed}, and the bytes an operation writes are a function of
 * (operation number, file offset), never zero, so a mismatch report can say which operation put
 * the byte it expected there and what a zero means (a hole, a truncated tail). The requests of
 * one AIO batch cover pairwise disjoint pages (Linux orders nothing between requests in flight,
 * and mixing buffered and direct IO on one page in flight is not coherent on any Linux
 * filesystem), and a batch either writes only or does not extend the file, so the outcome of a
 * batch does not depend on the order it completes in. The exception is the racing batch: an
 * O_DIRECT write with buffered reads of the same range in flight, whose reads may see old or new
 * data, but after which every cache must hold the new data. Replaying a seed repeats the run.
 *
 * <p>SIGBUS: touching a mapped page wholly past end of file kills the JVM, so the mapping is only
 * touched below the size the shadow holds, and statx confirmed that size after the last operation
 * that could change it.
 *
 * <p>What is checked is what a Linux filesystem guarantees to a single thread: a read returns the
 * last data written to each byte by any path (write, O_DIRECT write, store through the mapping,
 * AIO) and zeros for holes and for everything past a truncation; the size follows writes,
 * truncate and fallocate (without KEEP_SIZE); an O_DIRECT read or write sees and supersedes data
 * stored through the mapping that was not msynced yet (the kernel writes dirty pages back first).
 * Not checked by default: io_uring O_DIRECT reads that end short at end of file, which Linux 6.18's
 * FUSE client gets wrong whatever the daemon does (see {@link #aioBatch}); the option
 * {@code --aio-direct-read-across-eof} turns them on.
 */
public final class Exerciser {
    static final int PAGE = 4096;
    static final int HISTORY = 50;
    static final int AIO_MAX = 8;
    static final int MAX_IO = 32 * 1024;

    static final int FALLOC_FL_KEEP_SIZE = LinuxSyscalls.FALLOC_FL_KEEP_SIZE;
    static final int FALLOC_FL_PUNCH_HOLE = LinuxSyscalls.FALLOC_FL_PUNCH_HOLE;
    static final int FALLOC_FL_ZERO_RANGE = LinuxSyscalls.FALLOC_FL_ZERO_RANGE;

    /** Exit codes: 0 clean, 1 a mismatch, 2 usage, 3 an unexpected error (a failing call). */
    public static final int EXIT_OK = 0;
    public static final int EXIT_MISMATCH = 1;
    public static final int EXIT_USAGE = 2;
    public static final int EXIT_ERROR = 3;

    /** What to run. {@code ops < 0}: until interrupted. {@code corruptAt >= 0}: self-test. */
    public record Config(Path file, long ops, long seed, int maxSize, boolean useMmap, boolean useAio,
            boolean useDirect, int dioAlign, long corruptAt, long progressEvery, boolean msyncBeforeDirect,
            boolean aioDirectReadAcrossEof) {

        String replayCommand(long upToOps) {
            StringBuilder s = new StringBuilder("scripts/exerciser.sh ").append(file).append(" --replay ").append(seed)
                    .append(" --ops ").append(upToOps).append(" --max-size ").append(maxSize);
            if (!useMmap) {
                s.append(" --no-mmap");
            }
            if (!useAio) {
                s.append(" --no-aio");
            }
            if (!useDirect) {
                s.append(" --no-direct");
            }
            if (dioAlign != 0) {
                s.append(" --dio-align ").append(dioAlign);
            }
            if (corruptAt >= 0) {
                s.append(" --self-test-corrupt-at ").append(corruptAt);
            }
            if (msyncBeforeDirect) {
                s.append(" --msync-before-direct");
            }
            if (aioDirectReadAcrossEof) {
                s.append(" --aio-direct-read-across-eof");
            }
            return s.toString();
        }
    }

    /** A check failed; the report has been printed. */
    static final class Mismatch extends Exception {
        Mismatch(String message) {
            super(message, null, false, false);
        }
    }

    private final Config cfg;
    private final PrintStream out;
    private final SplittableRandom rnd;
    private final Arena arena = Arena.ofShared();

    // The shadow: shadow[i] for i < size is the file's byte i; for i >= size it is 0.
    private final byte[] shadow;
    /** The operation that last set each byte of the shadow (-1: never written). */
    private final long[] writer;
    private long size;

    private final int[] bufferedFd = {-1, -1};
    private int directFd = -1;
    private MemorySegment map;
    /** Pages stored to through the mapping since the last msync/fsync/munmap. */
    private final BitSet mapDirty = new BitSet();
    private IoUringEngine uring;
    private final MemorySegment ioBuf;
    private final MemorySegment[] aioBufs = new MemorySegment[AIO_MAX];
    private boolean zeroRangeSupported = true;

    private long op;
    private String current = "";
    private final ArrayDeque<String> history = new ArrayDeque<>();
    private final long[] counts = new long[Kind.values().length];
    private final long[] nanos = new long[Kind.values().length];
    /** O_DIRECT requests over pages stored to through the mapping and not written back yet. */
    private long directOverMappedDirty;

    enum Kind {
        // Weights (out of 200) chosen for coverage per second: fsync and msync(MS_SYNC) commit the
        // journal (milliseconds each), mapped accesses after an invalidation and racing batches
        // cost several FUSE round trips, so they are rarer than plain reads and writes.
        BREAD(44), BWRITE(40), DREAD(14), DWRITE(12), MREAD(16), MWRITE(14), MSYNC(3), AIO(10), RACE(5),
        TRUNCATE(10), FALLOCATE(8), FSYNC(2), REOPEN(6), REMAP(2), CHECK(2), STAT(12);

        final int weight;
        final boolean changesData;

        Kind(int weight) {
            this.weight = weight;
            this.changesData = switch (name()) {
                case "BWRITE", "DWRITE", "MWRITE", "AIO", "RACE", "TRUNCATE", "FALLOCATE" -> true;
                default -> false;
            };
        }
    }

    public Exerciser(Config cfg, PrintStream out) {
        if (cfg.maxSize() % PAGE != 0 || cfg.maxSize() < 2 * PAGE) {
            throw new IllegalArgumentException("--max-size must be a multiple of " + PAGE + " and at least " + 2 * PAGE);
        }
        this.cfg = cfg;
        this.out = out;
        this.rnd = new SplittableRandom(cfg.seed());
        this.shadow = new byte[cfg.maxSize()];
        this.writer = new long[cfg.maxSize()];
        java.util.Arrays.fill(writer, -1);
        this.ioBuf = arena.allocate(cfg.maxSize() + PAGE, PAGE);
        for (int i = 0; i < AIO_MAX; i++) {
            aioBufs[i] = arena.allocate(MAX_IO + PAGE, PAGE);
        }
    }

    public static void main(String[] args) {
        if (java.util.Arrays.asList(args).contains("--help") || java.util.Arrays.asList(args).contains("-h")) {
            System.out.println(USAGE);
            return;
        }
        Config cfg;
        try {
            cfg = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("exerciser: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(EXIT_USAGE);
            return;
        }
        System.exit(new Exerciser(cfg, System.out).run());
    }

    static final String USAGE = """
            usage: exerciser.sh FILE [--ops N | --soak] [--seed S | --replay S] [--max-size BYTES]
                                [--no-mmap] [--no-aio] [--no-direct] [--dio-align 512|4096]
                                [--msync-before-direct] [--aio-direct-read-across-eof]
                                [--progress N] [--self-test-corrupt-at OP]
              FILE is truncated to 0 and then exercised; it should be on a coherentfs mount.
              Exit: 0 clean, 1 mismatch (seed, op, last ops and differing range printed), 2 usage, 3 error.""";

    static Config parse(String[] args) {
        Path file = null;
        long ops = 100_000;
        long seed = System.nanoTime() ^ Long.rotateLeft(ProcessHandle.current().pid(), 32);
        int maxSize = 256 * 1024;
        boolean mmap = true;
        boolean aio = true;
        boolean direct = true;
        int dioAlign = 0;
        long corruptAt = -1;
        long progress = 0;
        boolean msyncBeforeDirect = false;
        boolean acrossEof = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--ops" -> ops = Long.parseLong(value(args, ++i, a));
                case "--soak" -> ops = -1;
                case "--seed", "--replay" -> seed = Long.parseLong(value(args, ++i, a));
                case "--max-size" -> maxSize = (int) parseSize(value(args, ++i, a));
                case "--no-mmap" -> mmap = false;
                case "--no-aio" -> aio = false;
                case "--no-direct" -> direct = false;
                case "--dio-align" -> dioAlign = Integer.parseInt(value(args, ++i, a));
                case "--msync-before-direct" -> msyncBeforeDirect = true;
                case "--aio-direct-read-across-eof" -> acrossEof = true;
                case "--progress" -> progress = Long.parseLong(value(args, ++i, a));
                case "--self-test-corrupt-at" -> corruptAt = Long.parseLong(value(args, ++i, a));
                default -> {
                    if (a.startsWith("-") || file != null) {
                        throw new IllegalArgumentException("unknown argument '" + a + "'");
                    }
                    file = Path.of(a);
                }
            }
        }
        if (file == null) {
            throw new IllegalArgumentException("no FILE given");
        }
        if (dioAlign != 0 && dioAlign != 512 && dioAlign != 4096) {
            throw new IllegalArgumentException("--dio-align must be 512 or 4096");
        }
        if (progress == 0) {
            progress = ops < 0 ? 100_000 : Math.max(ops / 10, 10_000);
        }
        return new Config(file, ops, seed, maxSize, mmap, aio, direct, dioAlign, corruptAt, progress, msyncBeforeDirect,
                acrossEof);
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) {
            throw new IllegalArgumentException(option + " needs a value");
        }
        return args[i];
    }

    private static long parseSize(String s) {
        String t = s.toLowerCase(Locale.ROOT);
        long mult = 1;
        if (t.endsWith("k")) {
            mult = 1024;
        } else if (t.endsWith("m")) {
            mult = 1024 * 1024;
        }
        if (mult != 1) {
            t = t.substring(0, t.length() - 1);
        }
        return Long.parseLong(t) * mult;
    }

    // ---------------------------------------------------------------- the run

    /** Runs the configured operations; returns an exit code. Prints its seed first. */
    public int run() {
        out.printf("exerciser: file %s, seed %d, %s, max size %d, mmap %s, aio %s, direct %s%n", cfg.file(),
                cfg.seed(), cfg.ops() < 0 ? "soak (until interrupted)" : cfg.ops() + " ops", cfg.maxSize(),
                cfg.useMmap(), cfg.useAio(), cfg.useDirect());
        out.flush();
        long start = System.nanoTime();
        Thread printer = null;
        if (cfg.ops() < 0) {
            printer = new Thread(() -> out.printf("%nexerciser: interrupted after %d ops, seed %d, no mismatch%n", op,
                    cfg.seed()));
            Runtime.getRuntime().addShutdownHook(printer);
        }
        try {
            open();
            int total = 0;
            for (Kind k : Kind.values()) {
                total += weight(k);
            }
            long next = cfg.progressEvery();
            for (op = 1; cfg.ops() < 0 || op <= cfg.ops(); op++) {
                if (op == cfg.corruptAt()) {
                    corruptShadow();
                    continue;
                }
                Kind k = pick(total);
                counts[k.ordinal()]++;
                long t0 = System.nanoTime();
                step(k);
                if (k.changesData || op % 8 == 0) {
                    checkSize(); // reads check the size too: a read crossing the end must stop there
                }
                nanos[k.ordinal()] += System.nanoTime() - t0;
                remember();
                if (op == next) {
                    next += cfg.progressEvery();
                    double secs = (System.nanoTime() - start) / 1e9;
                    out.printf("exerciser: %d ops, %.0f ops/s, size %d%n", op, op / secs, size);
                    out.flush();
                }
            }
            op--;
            fullCheck("final");
            double secs = (System.nanoTime() - start) / 1e9;
            out.printf("exerciser: PASS, %d ops in %.1f s (%.0f ops/s), seed %d%n", op, secs, op / secs, cfg.seed());
            out.printf("exerciser: op counts (mean time) %s; O_DIRECT requests over unsynced mapped stores %d%n",
                    countsText(), directOverMappedDirty);
            return EXIT_OK;
        } catch (Mismatch m) {
            return EXIT_MISMATCH;
        } catch (ErrnoException | RuntimeException e) {
            report("UNEXPECTED ERROR in " + current + ": " + e, null);
            e.printStackTrace(out);
            return EXIT_ERROR;
        } finally {
            if (printer != null) {
                try {
                    Runtime.getRuntime().removeShutdownHook(printer);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is running: it prints the interruption
                }
            }
            closeAll();
            out.flush();
        }
    }

    private int weight(Kind k) {
        return switch (k) {
            case DREAD, DWRITE -> cfg.useDirect() ? k.weight : 0;
            case MREAD, MWRITE, MSYNC, REMAP -> cfg.useMmap() ? k.weight : 0;
            case AIO -> cfg.useAio() ? k.weight : 0;
            case RACE -> cfg.useAio() && cfg.useDirect() ? k.weight : 0;
            default -> k.weight;
        };
    }

    private Kind pick(int total) {
        int r = rnd.nextInt(total);
        for (Kind k : Kind.values()) {
            r -= weight(k);
            if (r < 0) {
                return k;
            }
        }
        throw new AssertionError();
    }

    private String countsText() {
        StringBuilder s = new StringBuilder();
        for (Kind k : Kind.values()) {
            if (counts[k.ordinal()] > 0) {
                s.append(k.name().toLowerCase(Locale.ROOT)).append('=').append(counts[k.ordinal()])
                        .append(String.format(Locale.ROOT, "(%.0fus) ", nanos[k.ordinal()] / 1e3 / counts[k.ordinal()]));
            }
        }
        return s.toString().strip();
    }

    private void open() throws ErrnoException {
        String path = cfg.file().toString();
        int fd = LinuxSyscalls.open(path, LinuxSyscalls.O_RDWR | LinuxSyscalls.O_CREAT | LinuxSyscalls.O_CLOEXEC, 0644);
        LinuxSyscalls.ftruncate(fd, 0);
        bufferedFd[0] = fd;
        bufferedFd[1] = openBuffered();
        if (cfg.useDirect()) {
            directFd = openDirect();
        }
        if (cfg.useMmap()) {
            map = LinuxSyscalls.mmap(cfg.maxSize(), LinuxSyscalls.PROT_READ | LinuxSyscalls.PROT_WRITE,
                    LinuxSyscalls.MAP_SHARED, bufferedFd[0], 0);
        }
        if (cfg.useAio()) {
            uring = IoUringEngine.start(AIO_MAX * 2);
        }
        // Probe ZERO_RANGE once (the kernel's FUSE client may not pass it on): on an empty file
        // with KEEP_SIZE it changes nothing either way.
        try {
            LinuxSyscalls.fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, PAGE);
        } catch (ErrnoException e) {
            if (e.errno() != Errno.EOPNOTSUPP.code()) {
                throw e;
            }
            zeroRangeSupported = false;
            out.println("exerciser: fallocate ZERO_RANGE is not supported here (EOPNOTSUPP); not exercised");
        }
    }

    private int openBuffered() throws ErrnoException {
        return LinuxSyscalls.open(cfg.file().toString(), LinuxSyscalls.O_RDWR | LinuxSyscalls.O_CLOEXEC, 0);
    }

    private int openDirect() throws ErrnoException {
        return LinuxSyscalls.open(cfg.file().toString(),
                LinuxSyscalls.O_RDWR | LinuxSyscalls.O_DIRECT | LinuxSyscalls.O_CLOEXEC, 0);
    }

    private void closeAll() {
        try {
            if (uring != null) {
                uring.close();
            }
            if (map != null) {
                LinuxSyscalls.munmap(map);
                map = null;
            }
            for (int i = 0; i < bufferedFd.length; i++) {
                if (bufferedFd[i] >= 0) {
                    LinuxSyscalls.close(bufferedFd[i]);
                    bufferedFd[i] = -1;
                }
            }
            if (directFd >= 0) {
                LinuxSyscalls.close(directFd);
                directFd = -1;
            }
        } catch (ErrnoException | RuntimeException e) {
            out.println("exerciser: closing: " + e);
        }
        arena.close();
    }

    // ---------------------------------------------------------------- operations

    private void step(Kind k) throws ErrnoException, Mismatch {
        switch (k) {
            case BREAD -> bufferedRead();
            case BWRITE -> bufferedWrite();
            case DREAD -> directRead();
            case DWRITE -> directWrite();
            case MREAD -> mappedRead();
            case MWRITE -> mappedWrite();
            case MSYNC -> msync();
            case AIO -> aioBatch();
            case RACE -> raceBatch();
            case TRUNCATE -> truncate();
            case FALLOCATE -> fallocate();
            case FSYNC -> fsync();
            case REOPEN -> reopen();
            case REMAP -> remap();
            case CHECK -> fullCheck("check");
            case STAT -> stat();
        }
    }

    /** A length: mostly small, sometimes up to MAX_IO. */
    private int length() {
        int r = rnd.nextInt(20);
        if (r < 8) {
            return 1 + rnd.nextInt(64);
        } else if (r < 16) {
            return 1 + rnd.nextInt(PAGE * 2);
        } else if (r < 19) {
            return 1 + rnd.nextInt(MAX_IO / 4);
        }
        return 1 + rnd.nextInt(MAX_IO);
    }

    /** A read offset: mostly within the file, sometimes around or past its end. */
    private long readOffset() {
        if (size == 0 || rnd.nextInt(10) == 0) {
            return rnd.nextInt(cfg.maxSize());
        }
        return rnd.nextLong(size);
    }

    private int alignment() {
        return cfg.dioAlign() != 0 ? cfg.dioAlign() : (rnd.nextBoolean() ? 512 : PAGE);
    }

    private void bufferedRead() throws ErrnoException, Mismatch {
        int which = rnd.nextInt(2);
        long off = readOffset();
        int len = (int) Math.min(length(), cfg.maxSize() - off);
        current = "bread fd" + which + " [" + off + ", +" + len + ")";
        readAndCheck(bufferedFd[which], off, len, "buffered read");
    }

    private void bufferedWrite() throws ErrnoException, Mismatch {
        int which = rnd.nextInt(2);
        long off = rnd.nextInt(cfg.maxSize());
        int len = (int) Math.min(length(), cfg.maxSize() - off);
        current = "bwrite fd" + which + " [" + off + ", +" + len + ")" + (off + len > size ? " extends" : "");
        MemorySegment buf = ioBuf.asSlice(0, len);
        fill(buf, off);
        writeFully(bufferedFd[which], buf, off, "buffered write");
        applyWrite(off, len);
    }

    private void directRead() throws ErrnoException, Mismatch {
        int a = alignment();
        long off = alignDown(readOffset(), a);
        int len = (int) Math.max(a, alignDown(Math.min(length(), cfg.maxSize() - off), a));
        current = "dread a" + a + " [" + off + ", +" + len + ")";
        writeBackMappedBeforeDirect(off, len);
        readAndCheck(directFd, off, len, "O_DIRECT read");
    }

    private void directWrite() throws ErrnoException, Mismatch {
        int a = alignment();
        long off = alignDown(rnd.nextInt(cfg.maxSize()), a);
        int len = (int) Math.max(a, alignDown(Math.min(length(), cfg.maxSize() - off), a));
        current = "dwrite a" + a + " [" + off + ", +" + len + ")" + (off + len > size ? " extends" : "");
        writeBackMappedBeforeDirect(off, len);
        MemorySegment buf = ioBuf.asSlice(0, len);
        fill(buf, off);
        writeFully(directFd, buf, off, "O_DIRECT write");
        applyWrite(off, len);
    }

    private void mappedRead() throws Mismatch {
        if (size == 0) {
            current = "mread (empty file: nothing)";
            return;
        }
        long off = rnd.nextLong(size);
        int len = (int) Math.min(length(), size - off);
        current = "mread [" + off + ", +" + len + ")";
        // Only bytes below the size statx confirmed since the last change: no SIGBUS.
        byte[] got = map.asSlice(off, len).toArray(JAVA_BYTE);
        compare(got, off, len, len, "mapped read");
    }

    private void mappedWrite() {
        if (size == 0) {
            current = "mwrite (empty file: nothing)";
            return;
        }
        long off = rnd.nextLong(size);
        int len = (int) Math.min(length(), size - off);
        current = "mwrite [" + off + ", +" + len + ")";
        MemorySegment dst = map.asSlice(off, len);
        for (int i = 0; i < len; i++) {
            dst.set(JAVA_BYTE, i, pattern(op, off + i));
        }
        applyWrite(off, len);
        mapDirty.set((int) (off / PAGE), (int) ((off + len - 1) / PAGE) + 1);
    }

    private void msync() throws ErrnoException {
        boolean async = rnd.nextBoolean();
        current = "msync " + (async ? "MS_ASYNC" : "MS_SYNC");
        LinuxSyscalls.msync(map, cfg.maxSize(), async ? LinuxSyscalls.MS_ASYNC : LinuxSyscalls.MS_SYNC);
        if (!async) {
            mapDirty.clear();
        }
    }

    /**
     * Before an O_DIRECT request over pages stored to through the mapping: nothing by default (a
     * Linux filesystem writes such pages back itself first), msync with --msync-before-direct.
     */
    private void writeBackMappedBeforeDirect(long off, long len) throws ErrnoException {
        if (map == null) {
            return;
        }
        int first = (int) (off / PAGE);
        int end = (int) ((off + len - 1) / PAGE) + 1;
        int dirty = mapDirty.nextSetBit(first);
        if (dirty >= 0 && dirty < end) {
            directOverMappedDirty++;
            if (!cfg.msyncBeforeDirect()) {
                return;
            }
            LinuxSyscalls.msync(map, cfg.maxSize(), LinuxSyscalls.MS_SYNC);
            mapDirty.clear();
            current += " (msynced first)";
        }
    }

    private record Io(boolean write, boolean direct, long off, int len, MemorySegment buf) {}

    /**
     * Up to AIO_MAX requests in flight through io_uring, on the direct and the buffered
     * descriptor, covering pairwise disjoint pages; a batch writes only (and may extend the file)
     * or does not extend it, so its outcome does not depend on completion order.
     */
    private void aioBatch() throws ErrnoException, Mismatch {
        boolean writeOnly = size == 0 || rnd.nextInt(3) == 0;
        int n = 2 + rnd.nextInt(rnd.nextInt(4) == 0 ? AIO_MAX - 1 : 3);
        List<Io> ios = new ArrayList<>();
        BitSet pages = new BitSet();
        for (int attempt = 0; ios.size() < n && attempt < n * 4; attempt++) {
            boolean write = writeOnly || rnd.nextBoolean();
            boolean direct = cfg.useDirect() && rnd.nextBoolean();
            int a = direct ? alignment() : 1;
            long limit = write && !writeOnly ? size : cfg.maxSize();
            if (direct && !write && !cfg.aioDirectReadAcrossEof()) {
                // Linux 6.18: an io_uring read of an O_DIRECT FUSE file that ends short at EOF
                // is retried by io_uring at the same offset (FUSE's async DIO does not advance
                // ki_pos), returning the whole length with the first bytes repeated. Not ours to
                // check by default; --aio-direct-read-across-eof exercises it.
                limit = alignDown(size, a);
            }
            if (limit < a) {
                continue;
            }
            boolean within = write || direct && !cfg.aioDirectReadAcrossEof();
            long off = alignDown(within ? rnd.nextLong(limit) : readOffset(), a);
            int len = (int) Math.min(length(), limit - off);
            if (direct) {
                len = (int) alignDown(len, a);
                if (len == 0) {
                    if (off + a > limit) {
                        continue;
                    }
                    len = a;
                }
            }
            if (len == 0) {
                continue;
            }
            int p0 = (int) (off / PAGE);
            int p1 = (int) ((off + len - 1) / PAGE) + 1;
            int hit = pages.nextSetBit(p0);
            if (hit >= 0 && hit < p1) {
                continue;
            }
            pages.set(p0, p1);
            ios.add(new Io(write, direct, off, len, aioBufs[ios.size()].asSlice(0, len)));
        }
        StringBuilder d = new StringBuilder("aio");
        for (Io io : ios) {
            d.append(' ').append(io.write() ? 'w' : 'r').append(io.direct() ? "D" : "B").append('[').append(io.off())
                    .append(",+").append(io.len()).append(')');
        }
        current = d.toString();
        for (Io io : ios) {
            if (io.direct()) {
                writeBackMappedBeforeDirect(io.off(), io.len());
            }
            if (io.write()) {
                fill(io.buf(), io.off());
            }
        }
        long[] results = submitAll(ios);
        long before = size;
        for (int i = 0; i < ios.size(); i++) {
            Io io = ios.get(i);
            String what = "AIO " + (io.direct() ? "O_DIRECT " : "buffered ") + (io.write() ? "write" : "read");
            if (results[i] < 0) {
                throw ErrnoException.of((int) -results[i], what, "offset " + io.off() + ", length " + io.len());
            }
            if (io.write() && results[i] != io.len()) {
                report(what + " [" + io.off() + ", +" + io.len() + ") wrote " + results[i] + " bytes", null);
                throw new Mismatch("short write");
            }
            if (!io.write()) {
                // The batch does not change the size seen by its reads (no extending writes in it).
                int expected = (int) Math.max(0, Math.min(io.len(), before - io.off()));
                byte[] got = io.buf().asSlice(0, Math.max(0, results[i])).toArray(JAVA_BYTE);
                compare(got, io.off(), io.len(), expected, what);
            }
        }
        for (Io io : ios) {
            if (io.write()) {
                applyWrite(io.off(), io.len());
            }
        }
    }

    /** Submits every request through io_uring at once and waits until all completed. */
    private long[] submitAll(List<Io> ios) throws Mismatch {
        long[] results = new long[ios.size()];
        CountDownLatch done = new CountDownLatch(ios.size());
        for (int i = 0; i < ios.size(); i++) {
            Io io = ios.get(i);
            int slot = i;
            int fd = io.direct() ? directFd : bufferedFd[0];
            IoUringEngine.Completion c = r -> {
                results[slot] = r;
                done.countDown();
            };
            if (io.write()) {
                uring.submitWrite(fd, io.off(), io.buf(), c);
            } else {
                uring.submitRead(fd, io.off(), io.buf(), c);
            }
        }
        try {
            if (!done.await(5, TimeUnit.MINUTES)) {
                report("AIO requests did not complete within 5 minutes", null);
                throw new Mismatch("aio hang");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        return results;
    }

    /**
     * An O_DIRECT write (through io_uring, sometimes extending the file) with buffered reads of
     * overlapping ranges in flight beside it. A racing read may return, byte by byte, the data
     * from before or after the write, and a size from before or after it; once the write has
     * completed, a buffered read of the range must return only the new data: no cache (the
     * kernel's or the engine's) may keep a page filled with pre-write data during the write.
     */
    private void raceBatch() throws ErrnoException, Mismatch {
        int a = alignment();
        long woff = alignDown(rnd.nextInt(cfg.maxSize()), a);
        int wlen = (int) Math.max(a, alignDown(Math.min(1 + rnd.nextInt(MAX_IO), cfg.maxSize() - woff), a));
        List<Io> ios = new ArrayList<>();
        ios.add(new Io(true, true, woff, wlen, aioBufs[0].asSlice(0, wlen)));
        int readers = 1 + rnd.nextInt(3);
        long lo = Math.max(0, woff - PAGE);
        long hi = Math.min(cfg.maxSize(), woff + wlen + PAGE);
        for (int i = 0; i < readers; i++) {
            long roff = lo + rnd.nextLong(hi - lo);
            int rlen = (int) Math.min(Math.min(1 + rnd.nextLong(hi - lo), hi - roff), MAX_IO);
            ios.add(new Io(false, false, roff, rlen, aioBufs[1 + i].asSlice(0, rlen)));
        }
        StringBuilder d = new StringBuilder("race wD[").append(woff).append(",+").append(wlen).append(')');
        for (Io io : ios.subList(1, ios.size())) {
            d.append(" rB[").append(io.off()).append(",+").append(io.len()).append(')');
        }
        current = d.toString() + (woff + wlen > size ? " extends" : "");
        writeBackMappedBeforeDirect(woff, wlen);
        fill(ios.get(0).buf(), woff);
        long oldSize = size;
        long newSize = Math.max(size, woff + wlen);
        long[] results = submitAll(ios);
        if (results[0] != wlen) {
            if (results[0] < 0) {
                throw ErrnoException.of((int) -results[0], "AIO O_DIRECT write", "offset " + woff + ", length " + wlen);
            }
            report("AIO O_DIRECT write [" + woff + ", +" + wlen + ") wrote " + results[0] + " bytes", null);
            throw new Mismatch("short write");
        }
        for (int i = 1; i < ios.size(); i++) {
            Io io = ios.get(i);
            if (results[i] < 0) {
                throw ErrnoException.of((int) -results[i], "AIO buffered read", "offset " + io.off());
            }
            long minCount = Math.max(0, Math.min(io.len(), oldSize - io.off()));
            long maxCount = Math.max(0, Math.min(io.len(), newSize - io.off()));
            long got = results[i];
            int bad = -1;
            for (int j = 0; j < got && bad < 0; j++) {
                long o = io.off() + j;
                byte b = io.buf().get(JAVA_BYTE, j);
                boolean isNew = o >= woff && o < woff + wlen && b == pattern(op, o);
                if (b != shadow[(int) o] && !isNew) {
                    bad = j;
                }
            }
            if (got < minCount || got > maxCount || bad >= 0) {
                String s = "racing buffered read of [" + io.off() + ", +" + io.len() + ") returned " + got
                        + " bytes (" + minCount + " to " + maxCount + " allowed)"
                        + (bad >= 0 ? "; byte " + (io.off() + bad) + " is neither the old nor the new data" : "");
                report("MISMATCH: " + s, null);
                throw new Mismatch(s);
            }
        }
        applyWrite(woff, wlen);
        // Now strictly: every cache must hold the new data.
        readAndCheck(bufferedFd[rnd.nextInt(2)], lo, (int) (hi - lo), "buffered read after the racing O_DIRECT write");
    }

    private void truncate() throws ErrnoException {
        long to = switch (rnd.nextInt(4)) {
            case 0 -> size == 0 ? 0 : rnd.nextLong(size); // down
            case 1 -> size + rnd.nextLong(cfg.maxSize() - size + 1); // up
            case 2 -> alignDown(rnd.nextInt(cfg.maxSize() + 1), PAGE);
            default -> Math.max(0, Math.min(cfg.maxSize(), size + rnd.nextInt(2 * PAGE) - PAGE)); // near
        };
        int fd = anyFd();
        current = "truncate " + size + " -> " + to + " via " + fdName(fd);
        LinuxSyscalls.ftruncate(fd, to);
        setSize(to);
    }

    private void fallocate() throws ErrnoException {
        int[] modes = zeroRangeSupported
                ? new int[] {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE,
                        FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}
                : new int[] {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
        int mode = modes[rnd.nextInt(modes.length)];
        long off = rnd.nextInt(rnd.nextInt(4) == 0 ? cfg.maxSize() : (int) Math.max(1, size));
        if (rnd.nextBoolean()) {
            off = alignDown(off, PAGE);
        }
        int len = (int) Math.min(length(), cfg.maxSize() - off);
        int fd = anyFd();
        current = "fallocate " + modeName(mode) + " [" + off + ", +" + len + ") via " + fdName(fd) + ", size " + size;
        LinuxSyscalls.fallocate(fd, mode, off, len);
        long end = off + len;
        boolean keep = (mode & FALLOC_FL_KEEP_SIZE) != 0;
        if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0) {
            zero(off, keep ? Math.min(end, size) : end);
        }
        if (!keep && end > size) {
            setSize(end);
        }
    }

    private void fsync() throws ErrnoException {
        boolean data = rnd.nextBoolean();
        int fd = anyFd();
        current = (data ? "fdatasync " : "fsync ") + fdName(fd);
        if (data) {
            LinuxSyscalls.fdatasync(fd);
        } else {
            LinuxSyscalls.fsync(fd);
        }
        mapDirty.clear(); // fsync writes back the file's dirty pages, mapped ones included
    }

    /** statx through the other descriptors (checkSize uses the buffered ones after every op). */
    private void stat() throws ErrnoException, Mismatch {
        int fd = anyFd();
        current = "statx via " + fdName(fd);
        long real = LinuxSyscalls.statx(fd).size();
        if (real != size) {
            String s = "size by statx via " + fdName(fd) + " is " + real + ", expected " + size;
            report("MISMATCH: " + s, null);
            throw new Mismatch(s);
        }
    }

    private void reopen() throws ErrnoException {
        int which = rnd.nextInt(cfg.useDirect() ? 3 : 2);
        if (which == 2) {
            current = "reopen direct";
            LinuxSyscalls.close(directFd);
            directFd = -1;
            directFd = openDirect();
        } else {
            current = "reopen fd" + which + (which == 0 && map != null ? " (the mapping stays)" : "");
            LinuxSyscalls.close(bufferedFd[which]);
            bufferedFd[which] = -1;
            bufferedFd[which] = openBuffered();
        }
    }

    private void remap() throws ErrnoException {
        current = "munmap + mmap via fd0";
        LinuxSyscalls.munmap(map);
        map = null;
        mapDirty.clear(); // FUSE writes a shared mapping's dirty pages back when it is unmapped
        map = LinuxSyscalls.mmap(cfg.maxSize(), LinuxSyscalls.PROT_READ | LinuxSyscalls.PROT_WRITE,
                LinuxSyscalls.MAP_SHARED, bufferedFd[0], 0);
    }

    /** Reads the whole file through one path (buffered, O_DIRECT or the mapping) and compares. */
    private void fullCheck(String why) throws ErrnoException, Mismatch {
        int how = rnd.nextInt(3);
        if (how == 1 && !cfg.useDirect() || how == 2 && map == null) {
            how = 0;
        }
        switch (how) {
            case 0 -> {
                current = why + ": whole file, buffered";
                readAndCheck(bufferedFd[rnd.nextInt(2)], 0, cfg.maxSize(), "buffered read of the whole file");
            }
            case 1 -> {
                current = why + ": whole file, O_DIRECT";
                writeBackMappedBeforeDirect(0, cfg.maxSize());
                readAndCheck(directFd, 0, cfg.maxSize(), "O_DIRECT read of the whole file");
            }
            default -> {
                current = why + ": whole file, mapped";
                checkSize();
                byte[] got = map.asSlice(0, size).toArray(JAVA_BYTE);
                compare(got, 0, (int) size, (int) size, "mapped read of the whole file");
            }
        }
    }

    /** Self-test: the shadow is deliberately wrong from here on; the next full check must say so. */
    private void corruptShadow() throws ErrnoException, Mismatch {
        if (size == 0) {
            LinuxSyscalls.ftruncate(bufferedFd[0], PAGE);
            setSize(PAGE);
        }
        int at = (int) rnd.nextLong(size);
        shadow[at] ^= (byte) 0x5a;
        writer[at] = op;
        current = "SELF-TEST: shadow byte " + at + " corrupted on purpose";
        out.println("exerciser: " + current + " (op " + op + "); a mismatch must follow");
        remember();
        fullCheck("self-test check");
        out.println("exerciser: SELF-TEST FAILED: the corrupted shadow was not detected");
        throw new IllegalStateException("self-test: corruption not detected");
    }

    // ---------------------------------------------------------------- checking

    private void readAndCheck(int fd, long off, int len, String what) throws ErrnoException, Mismatch {
        MemorySegment buf = ioBuf.asSlice(0, len);
        long got = readUpTo(fd, buf, off);
        int expected = (int) Math.max(0, Math.min(len, size - off));
        compare(buf.asSlice(0, got).toArray(JAVA_BYTE), off, len, expected, what);
    }

    /**
     * pread until {@code buf} is full or a read comes back short: on a regular file Linux returns
     * short only at end of file (an O_DIRECT read continued from an unaligned position would fail).
     */
    private static long readUpTo(int fd, MemorySegment buf, long off) throws ErrnoException {
        long got = 0;
        while (got < buf.byteSize()) {
            long n = LinuxSyscalls.pread(fd, buf.asSlice(got), off + got);
            got += n;
            if (n == 0 || got % PAGE != 0) {
                break;
            }
        }
        return got;
    }

    /** {@code got} was read at {@code off} for {@code len} bytes, where {@code expected} were due. */
    private void compare(byte[] got, long off, int len, int expected, String what) throws Mismatch {
        int first = -1;
        int last = -1;
        int count = 0;
        int n = Math.min(got.length, expected);
        for (int i = 0; i < n; i++) {
            if (got[i] != shadow[(int) off + i]) {
                if (first < 0) {
                    first = i;
                }
                last = i;
                count++;
            }
        }
        if (first < 0 && got.length == expected) {
            return;
        }
        StringBuilder s = new StringBuilder();
        s.append(what).append(" of [").append(off).append(", +").append(len).append("): ");
        if (got.length != expected) {
            s.append("returned ").append(got.length).append(" bytes, expected ").append(expected)
                    .append(" (shadow size ").append(size).append("). ");
        }
        if (first >= 0) {
            s.append(count).append(" bytes differ in [").append(off + first).append(", ").append(off + last + 1)
                    .append(")\n");
            s.append(hexdiff(got, off, first, n));
        }
        report("MISMATCH: " + s, new long[] {off, len});
        throw new Mismatch(s.toString());
    }

    private String hexdiff(byte[] got, long off, int first, int n) {
        StringBuilder s = new StringBuilder();
        int from = first & ~15;
        int to = Math.min(n, from + 64);
        for (int row = from; row < to; row += 16) {
            s.append(String.format("  %8d  expected", off + row));
            for (int i = row; i < Math.min(row + 16, to); i++) {
                s.append(String.format(" %02x", shadow[(int) off + i] & 0xff));
            }
            s.append("\n            got     ");
            for (int i = row; i < Math.min(row + 16, to); i++) {
                s.append(String.format(i < got.length && got[i] != shadow[(int) off + i] ? "*%02x" : " %02x",
                        got[i] & 0xff));
            }
            s.append('\n');
        }
        long w = writer[(int) off + first];
        s.append("  the expected byte at ").append(off + first).append(" was set by ")
                .append(w < 0 ? "nothing (never written: 0)" : "op " + w);
        String by = whoWrote(got[first], off + first);
        s.append("; the byte read matches ").append(by).append('\n');
        return s.toString();
    }

    /** Which recent operation's pattern the byte read would be (helps tell stale from garbage). */
    private String whoWrote(byte b, long at) {
        if (b == 0) {
            return "a zero (hole, truncated tail or never written)";
        }
        for (long o = op; o > Math.max(0, op - 10_000); o--) {
            if (pattern(o, at) == b) {
                return "the pattern of op " + o + " (possibly by chance)";
            }
        }
        return "no write of the last 10000 ops";
    }

    private void checkSize() throws ErrnoException, Mismatch {
        int fd = bufferedFd[(int) (op & 1)];
        long real = LinuxSyscalls.statx(fd).size();
        if (real != size) {
            String s = "size is " + real + ", expected " + size;
            report("MISMATCH: " + s, null);
            throw new Mismatch(s);
        }
    }

    private void report(String problem, long[] range) {
        out.println();
        out.println("exerciser: " + problem);
        out.println("exerciser: seed " + cfg.seed() + ", op " + op + ": " + current);
        out.println("exerciser: last " + history.size() + " ops before it (oldest first):");
        for (String h : history) {
            out.println("    " + h);
        }
        if (range != null) {
            out.println("exerciser: reading the range again: " + reread(range[0], (int) range[1]));
        }
        out.println("exerciser: replay: " + cfg.replayCommand(op));
        out.flush();
    }

    /** After a mismatch: what a fresh buffered and a fresh O_DIRECT descriptor read there now. */
    private String reread(long off, int len) {
        StringBuilder s = new StringBuilder();
        try {
            int fd = openBuffered();
            try {
                s.append("fresh buffered fd ").append(matches(fd, off, len));
            } finally {
                LinuxSyscalls.close(fd);
            }
            if (cfg.useDirect()) {
                long a0 = alignDown(off, PAGE);
                long a1 = alignDown(off + len + PAGE - 1, PAGE);
                int dfd = openDirect();
                try {
                    s.append(", fresh O_DIRECT fd ").append(matches(dfd, a0, (int) (a1 - a0)));
                } finally {
                    LinuxSyscalls.close(dfd);
                }
            }
        } catch (ErrnoException | RuntimeException e) {
            s.append(" (failed: ").append(e).append(')');
        }
        return s.toString();
    }

    private String matches(int fd, long off, int len) throws ErrnoException {
        len = (int) Math.min(len, cfg.maxSize() - off);
        MemorySegment buf = ioBuf.asSlice(0, len);
        long got = readUpTo(fd, buf, off);
        int bad = 0;
        for (int i = 0; i < got; i++) {
            if (buf.get(JAVA_BYTE, i) != shadow[(int) off + i]) {
                bad++;
            }
        }
        long expected = Math.max(0, Math.min(len, size - off));
        return bad == 0 && got == expected ? "matches the shadow"
                : "differs (" + bad + " bytes, " + got + " read of " + expected + " expected)";
    }

    // ---------------------------------------------------------------- the shadow

    /** The byte op {@code o} writes at file offset {@code at}: never 0, so zeros mean holes. */
    static byte pattern(long o, long at) {
        long x = o * 0x9E3779B97F4A7C15L + at * 0xC2B2AE3D27D4EB4FL;
        x ^= x >>> 31;
        x *= 0xBF58476D1CE4E5B9L;
        x ^= x >>> 29;
        byte b = (byte) x;
        return b == 0 ? (byte) 1 : b;
    }

    private void fill(MemorySegment buf, long off) {
        for (int i = 0; i < buf.byteSize(); i++) {
            buf.set(JAVA_BYTE, i, pattern(op, off + i));
        }
    }

    private void applyWrite(long off, int len) {
        for (int i = 0; i < len; i++) {
            shadow[(int) off + i] = pattern(op, off + i);
            writer[(int) off + i] = op;
        }
        if (off + len > size) {
            size = off + len;
        }
    }

    private void zero(long from, long to) {
        for (long i = from; i < to; i++) {
            shadow[(int) i] = 0;
            writer[(int) i] = op;
        }
    }

    private void setSize(long to) {
        if (to < size) {
            zero(to, size);
        }
        size = to;
    }

    private void writeFully(int fd, MemorySegment buf, long off, String what) throws ErrnoException, Mismatch {
        long n = LinuxSyscalls.pwrite(fd, buf, off);
        if (n != buf.byteSize()) {
            String s = what + " [" + off + ", +" + buf.byteSize() + ") wrote " + n + " bytes";
            report("SHORT WRITE: " + s, null);
            throw new Mismatch(s);
        }
    }

    private void remember() {
        if (history.size() == HISTORY) {
            history.removeFirst();
        }
        history.addLast(op + ": " + current);
    }

    private int anyFd() {
        int r = rnd.nextInt(cfg.useDirect() ? 3 : 2);
        return r == 2 ? directFd : bufferedFd[r];
    }

    private String fdName(int fd) {
        return fd == directFd ? "direct fd" : fd == bufferedFd[0] ? "fd0" : "fd1";
    }

    private static String modeName(int mode) {
        List<String> names = new ArrayList<>();
        if ((mode & FALLOC_FL_PUNCH_HOLE) != 0) {
            names.add("PUNCH_HOLE");
        }
        if ((mode & FALLOC_FL_ZERO_RANGE) != 0) {
            names.add("ZERO_RANGE");
        }
        if ((mode & FALLOC_FL_KEEP_SIZE) != 0) {
            names.add("KEEP_SIZE");
        }
        return names.isEmpty() ? "default" : String.join("|", names);
    }

    private static long alignDown(long v, long a) {
        return v / a * a;
    }
}
