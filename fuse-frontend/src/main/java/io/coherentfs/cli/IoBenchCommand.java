package io.coherentfs.cli;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.cli.bench.DeviceLoad;
import io.coherentfs.cli.bench.Fio;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs io-bench}: file IO through the engine's {@link Vfs}, in process (no FUSE),
 * against fio on a file of the filesystem that holds the image, in the same run:
 * <ul>
 *   <li>{@code cached-randread}: 4 KiB random buffered reads of a file that fits in the page
 *       cache, from {@code --threads} threads; the reference is fio's psync randread with
 *       {@code --direct=0} on a host file already in the kernel's page cache, same threads;
 *   <li>{@code seqwrite-fsync}: 1 MiB sequential buffered writes of {@code --write-size} bytes into
 *       a new file, then fsync, timed together; the reference is fio's sequential buffered 1 MiB
 *       writes with {@code --end_fsync=1} on a host file.
 * </ul>
 * Each job runs {@code --repeat} times alternating with its reference; medians are printed with
 * the ratio (coherentfs / reference).
 */
@Command(name = "io-bench", mixinStandardHelpOptions = true,
        description = "Benchmark buffered file IO through the engine (no FUSE) against fio on a host file.")
public final class IoBenchCommand implements Callable<Integer> {
    private static final int PAGE = 4096;
    private static final int MIB = 1 << 20;

    @Option(names = "--image", defaultValue = "coherentfs-io-bench.img",
            description = "Image file to format and run on (default: ${DEFAULT-VALUE}); removed afterwards if the run created it.")
    Path image;

    @Option(names = "--size", defaultValue = "2g", description = "Image size (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(names = "--file-size", defaultValue = "256m",
            description = "Size of the file the cached reads use (default: ${DEFAULT-VALUE}); the cache is made large enough.")
    String fileSize;

    @Option(names = "--write-size", defaultValue = "512m", description = "Bytes the sequential write job writes (default: ${DEFAULT-VALUE}).")
    String writeSize;

    @Option(names = "--threads", defaultValue = "2", description = "Reader threads (default: ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = "--runtime", defaultValue = "5", description = "Seconds per timed read run (default: ${DEFAULT-VALUE}).")
    int runtime;

    @Option(names = "--repeat", defaultValue = "3", description = "Runs per job, alternating with the reference (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--jobs", split = ",",
            defaultValue = "cached-randread,seqwrite-fsync,direct-randread-4k-qd1,direct-randread-4k-qd32,direct-seqwrite-1m-qd8,direct-seqread-1m-qd8",
            description = "Jobs to run (default: ${DEFAULT-VALUE}).")
    List<String> jobs;

    @Option(names = "--direct-file-size", defaultValue = "1g",
            description = "Size of the file the direct jobs use, and of fio's raw file (default: ${DEFAULT-VALUE}).")
    String directFileSize;

    /** The direct jobs: our side through Vfs.aioRead/aioWrite, fio's with io_uring on a raw file. */
    private static final List<DeviceLoad.Job> DIRECT_JOBS = List.of(
            new DeviceLoad.Job("direct-randread-4k-qd1", false, true, 4096, 1),
            new DeviceLoad.Job("direct-randread-4k-qd32", false, true, 4096, 32),
            new DeviceLoad.Job("direct-seqwrite-1m-qd8", true, false, MIB, 8),
            new DeviceLoad.Job("direct-seqread-1m-qd8", false, false, MIB, 8));

    @Option(names = "--no-reference", description = "Skip the fio reference runs.")
    boolean noReference;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private record Row(String job, String unit, double[] ours, double[] ref) {}

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        List<String> known = new ArrayList<>(List.of("cached-randread", "seqwrite-fsync"));
        DIRECT_JOBS.forEach(j -> known.add(j.name()));
        for (String j : jobs) {
            if (!known.contains(j)) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "unknown job '" + j
                        + "' (known: " + String.join(", ", known) + ")");
            }
        }
        if (threads < 1 || runtime < 1 || repeat < 1) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--threads, --runtime and --repeat must be positive");
        }
        boolean reference = !noReference && Fio.available();
        if (!noReference && !reference) {
            out.println("io-bench: fio not found on PATH: no reference runs");
        }
        long imageBytes = ImageFiles.parseSize(size);
        long fileBytes = ImageFiles.parseSize(fileSize) / PAGE * PAGE;
        long writeBytes = ImageFiles.parseSize(writeSize) / MIB * MIB;
        Path img = image.toAbsolutePath();
        Path hostDir = img.getParent() == null ? Path.of(".").toAbsolutePath() : img.getParent();
        boolean created = !Files.exists(img);
        List<Row> rows = new ArrayList<>();
        try {
            ImageFiles.createSparse(img, imageBytes);
            try (DirectDevice device = DirectDevice.open(img)) {
                CoherentFs.mkfs(device, "io-bench", UUID.randomUUID(), Caller.ROOT);
                CoherentFs.Options options = CoherentFs.Options.DEFAULT
                        .withCacheBytes(Math.max(CoherentFs.Options.DEFAULT_CACHE_BYTES, fileBytes + (64L << 20)));
                try (CoherentFs fs = CoherentFs.open(device, options)) {
                    out.printf(Locale.ROOT, "io-bench: image %s (%s), engine in process through the Vfs API, cache %s%n",
                            img, Sizes.human(imageBytes), Sizes.human(options.cacheBytes()));
                    if (jobs.contains("cached-randread")) {
                        rows.add(cachedRandRead(out, fs, fileBytes, hostDir, reference));
                    }
                    if (jobs.contains("seqwrite-fsync")) {
                        rows.add(seqWriteFsync(out, fs, writeBytes, hostDir, reference));
                    }
                    List<DeviceLoad.Job> direct = DIRECT_JOBS.stream().filter(j -> jobs.contains(j.name())).toList();
                    if (!direct.isEmpty()) {
                        rows.addAll(directJobs(out, fs, direct, ImageFiles.parseSize(directFileSize) / MIB * MIB,
                                hostDir, reference));
                    }
                }
            }
        } finally {
            if (created) {
                Files.deleteIfExists(img);
            }
        }
        out.printf(Locale.ROOT, "%n%-16s %14s %14s %8s%n", "job", "coherentfs", "reference", "ratio");
        for (Row r : rows) {
            double ours = median(r.ours());
            double ref = r.ref() == null ? Double.NaN : median(r.ref());
            out.printf(Locale.ROOT, "%-16s %14s %14s %8s%n", r.job(), fmt(ours, r.unit()),
                    r.ref() == null ? "-" : fmt(ref, r.unit()), r.ref() == null ? "-" : String.format(Locale.ROOT, "%.2f", ours / ref));
        }
        out.println("medians of " + repeat + " runs; ratio = coherentfs / reference (above 1: coherentfs is faster)");
        out.flush();
        return 0;
    }

    private static String fmt(double v, String unit) {
        return String.format(Locale.ROOT, "%.0f %s", v, unit);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    // ---- cached random reads -----------------------------------------------------------------

    private Row cachedRandRead(PrintWriter out, CoherentFs fs, long fileBytes, Path hostDir, boolean reference)
            throws Exception {
        long ino = fs.mknod(Vfs.ROOT, "cached".getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        OpenFile f = fs.open(ino, OpenFile.O_RDWR);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment chunk = arena.allocate(MIB, PAGE);
            SplittableRandom fill = new SplittableRandom(1);
            for (long at = 0; at < fileBytes; at += MIB) {
                for (long i = 0; i < MIB; i += 8) {
                    chunk.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i, fill.nextLong());
                }
                fs.write(f, at, chunk.asSlice(0, Math.min(MIB, fileBytes - at)));
            }
            fs.fsync(f, false);
            for (long at = 0; at < fileBytes; at += MIB) { // everything cached before timing
                fs.read(f, at, chunk.asSlice(0, Math.min(MIB, fileBytes - at)));
            }
        }
        Path host = hostDir.resolve("io-bench-ref-" + ProcessHandle.current().pid() + ".dat");
        List<String> fio = null;
        if (reference) {
            writeHostFile(host, fileBytes);
            fio = List.of("fio", "--name=cached-randread", "--filename=" + host, "--size=" + fileBytes, "--direct=0",
                    "--invalidate=0", "--ioengine=psync", "--rw=randread", "--bs=4k", "--numjobs=" + threads,
                    "--group_reporting", "--time_based", "--ramp_time=1", "--runtime=" + runtime, "--norandommap",
                    "--randrepeat=0", "--output-format=terse", "--terse-version=3");
            out.println("reference: " + String.join(" ", fio));
        }
        double[] ours = new double[repeat];
        double[] ref = reference ? new double[repeat] : null;
        try {
            for (int r = 0; r < repeat; r++) {
                ours[r] = readRun(fs, f, fileBytes);
                out.printf(Locale.ROOT, "cached-randread run %d: coherentfs %.0f reads/s%n", r + 1, ours[r]);
                if (reference) {
                    ref[r] = fioRate(fio, false, false);
                    out.printf(Locale.ROOT, "cached-randread run %d: fio        %.0f reads/s%n", r + 1, ref[r]);
                }
            }
        } finally {
            Files.deleteIfExists(host);
            fs.release(f);
        }
        return new Row("cached-randread", "reads/s", ours, ref);
    }

    /** One timed run: {@code threads} readers of random 4 KiB pages for {@code runtime} seconds (after 1 s of ramp). */
    private double readRun(CoherentFs fs, OpenFile f, long fileBytes) throws Exception {
        long pages = fileBytes / PAGE;
        AtomicBoolean counting = new AtomicBoolean();
        AtomicBoolean stop = new AtomicBoolean();
        LongAdder reads = new LongAdder();
        CountDownLatch done = new CountDownLatch(threads);
        Exception[] failure = new Exception[1];
        for (int t = 0; t < threads; t++) {
            long seed = t * 7919L + System.nanoTime();
            Thread.ofPlatform().name("io-bench-reader-" + t).start(() -> {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment buf = arena.allocate(PAGE, PAGE);
                    SplittableRandom random = new SplittableRandom(seed);
                    long n = 0;
                    boolean was = false;
                    while (!stop.get()) {
                        for (int i = 0; i < 256; i++) {
                            fs.read(f, random.nextLong(pages) * PAGE, buf);
                        }
                        boolean now = counting.get();
                        if (now && !was) {
                            n = 0;
                        }
                        was = now;
                        n += 256;
                    }
                    reads.add(n);
                } catch (Exception e) {
                    failure[0] = e;
                } finally {
                    done.countDown();
                }
            });
        }
        Thread.sleep(1000); // ramp (this is a benchmark, not a test: timing is the point)
        counting.set(true);
        long t0 = System.nanoTime();
        Thread.sleep(runtime * 1000L);
        stop.set(true);
        long elapsed = System.nanoTime() - t0;
        done.await();
        if (failure[0] != null) {
            throw failure[0];
        }
        return reads.sum() / (elapsed / 1e9);
    }

    // ---- sequential writes with fsync ----------------------------------------------------------

    private Row seqWriteFsync(PrintWriter out, CoherentFs fs, long writeBytes, Path hostDir, boolean reference)
            throws Exception {
        Path host = hostDir.resolve("io-bench-ref-" + ProcessHandle.current().pid() + ".dat");
        List<String> fio = null;
        if (reference) {
            fio = List.of("fio", "--name=seqwrite-fsync", "--filename=" + host, "--size=" + writeBytes, "--direct=0",
                    "--ioengine=psync", "--rw=write", "--bs=1m", "--end_fsync=1", "--output-format=terse",
                    "--terse-version=3");
            out.println("reference: " + String.join(" ", fio));
        }
        double[] ours = new double[repeat];
        double[] ref = reference ? new double[repeat] : null;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment chunk = arena.allocate(MIB, PAGE);
            chunk.fill((byte) 0x5a);
            for (int r = 0; r < repeat; r++) {
                byte[] name = ("seq" + r).getBytes(StandardCharsets.UTF_8);
                long ino = fs.mknod(Vfs.ROOT, name, 0644, 0, Caller.ROOT).ino();
                fs.forget(ino, 1); // mknod counts a lookup (as FUSE's): give it back so unlink frees it
                OpenFile f = fs.open(ino, OpenFile.O_RDWR);
                long t0 = System.nanoTime();
                for (long at = 0; at < writeBytes; at += MIB) {
                    fs.write(f, at, chunk);
                }
                fs.fsync(f, false);
                long elapsed = System.nanoTime() - t0;
                fs.release(f);
                fs.unlink(Vfs.ROOT, name);
                fs.sync();
                ours[r] = writeBytes / (double) MIB / (elapsed / 1e9);
                out.printf(Locale.ROOT, "seqwrite-fsync run %d: coherentfs %.0f MiB/s%n", r + 1, ours[r]);
                if (reference) {
                    Files.deleteIfExists(host);
                    ref[r] = fioRate(fio, true, true);
                    Files.deleteIfExists(host);
                    out.printf(Locale.ROOT, "seqwrite-fsync run %d: fio        %.0f MiB/s%n", r + 1, ref[r]);
                }
            }
        } finally {
            Files.deleteIfExists(host);
        }
        return new Row("seqwrite-fsync", "MiB/s", ours, ref);
    }

    // ---- direct IO at a queue depth -------------------------------------------------------------

    private List<Row> directJobs(PrintWriter out, CoherentFs fs, List<DeviceLoad.Job> direct, long fileBytes,
            Path hostDir, boolean reference) throws Exception {
        long ino = fs.mknod(Vfs.ROOT, "direct".getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        OpenFile f = fs.open(ino, OpenFile.O_RDWR | OpenFile.O_DIRECT);
        Path raw = hostDir.resolve("io-bench-raw-" + ProcessHandle.current().pid() + ".img");
        List<Row> rows = new ArrayList<>();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment chunk = arena.allocate(MIB, PAGE);
            chunk.fill((byte) 0x3c);
            for (long at = 0; at < fileBytes; at += MIB) { // written extents everywhere: overwrites, no allocation
                fs.write(f, at, chunk);
            }
            fs.fsync(f, false);
            if (reference) {
                ImageFiles.createSparse(raw, fileBytes);
                try (var ch = java.nio.channels.FileChannel.open(raw, java.nio.file.StandardOpenOption.WRITE)) {
                    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(MIB);
                    for (long at = 0; at < fileBytes; at += MIB) {
                        b.clear();
                        ch.write(b, at);
                    }
                    ch.force(true);
                }
            }
            for (DeviceLoad.Job job : direct) {
                List<String> fio = reference ? Fio.command(raw, fileBytes, job, "io_uring", 1, runtime) : null;
                if (fio != null) {
                    out.println("reference: " + String.join(" ", fio));
                }
                boolean iops = job.blockSize() == PAGE;
                double[] ours = new double[repeat];
                double[] ref = reference ? new double[repeat] : null;
                for (int r = 0; r < repeat; r++) {
                    ours[r] = directRun(fs, f, fileBytes, job, arena, iops);
                    out.printf(Locale.ROOT, "%s run %d: coherentfs %.0f %s%n", job.name(), r + 1, ours[r], iops ? "IOPS" : "MiB/s");
                    if (reference) {
                        DeviceLoad.Result res = Fio.run(fio, job, runtime);
                        ref[r] = iops ? res.iops() : res.mibPerSecond();
                        out.printf(Locale.ROOT, "%s run %d: fio        %.0f %s%n", job.name(), r + 1, ref[r], iops ? "IOPS" : "MiB/s");
                    }
                }
                rows.add(new Row(job.name(), iops ? "IOPS" : "MiB/s", ours, ref));
            }
        } finally {
            fs.release(f);
            Files.deleteIfExists(raw);
        }
        return rows;
    }

    /**
     * One timed run of a direct job: {@code queueDepth} chains of Vfs.aioRead/aioWrite, each
     * submitting its next request from the completion of its last (as an event loop reaping
     * completions would), so {@code queueDepth} requests stay in flight; 1 s ramp, then
     * {@code runtime} seconds.
     */
    private double directRun(CoherentFs fs, OpenFile f, long fileBytes, DeviceLoad.Job job, Arena arena, boolean iops)
            throws Exception {
        int qd = job.queueDepth();
        int bs = job.blockSize();
        long slots = fileBytes / bs;
        java.util.concurrent.atomic.AtomicLong next = new java.util.concurrent.atomic.AtomicLong();
        LongAdder done = new LongAdder();
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        CountDownLatch chainsEnded = new CountDownLatch(qd);
        AtomicBoolean stop = new AtomicBoolean();
        for (int i = 0; i < qd; i++) {
            MemorySegment buffer = arena.allocate(bs, PAGE);
            buffer.fill((byte) i);
            SplittableRandom random = new SplittableRandom(job.name().hashCode() * 31L + i);
            new Object() {
                void submit() {
                    if (stop.get() || failure.get() != null) {
                        chainsEnded.countDown();
                        return;
                    }
                    long at = (job.random() ? random.nextLong(slots) : next.getAndIncrement() % slots) * bs;
                    try {
                        (job.write() ? fs.aioWrite(f, at, buffer) : fs.aioRead(f, at, buffer)).whenComplete((n, e) -> {
                            if (e != null) {
                                failure.compareAndSet(null, e);
                            }
                            done.increment();
                            submit();
                        });
                    } catch (IOException | RuntimeException e) {
                        failure.compareAndSet(null, e);
                        chainsEnded.countDown();
                    }
                }
            }.submit();
        }
        Thread.sleep(1000); // ramp (a benchmark: timing is the point)
        long counted = done.sum();
        long start = System.nanoTime();
        Thread.sleep(runtime * 1000L);
        long ios = done.sum() - counted;
        long elapsed = System.nanoTime() - start;
        stop.set(true);
        chainsEnded.await();
        if (failure.get() != null) {
            throw new IOException("direct IO failed", failure.get());
        }
        double seconds = elapsed / 1e9;
        return iops ? ios / seconds : ios * (double) bs / MIB / seconds;
    }

    /** Runs fio; returns IOPS, or MiB/s when {@code bandwidth}. */
    private static double fioRate(List<String> command, boolean write, boolean bandwidth) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String text;
        try (InputStream in = p.getInputStream()) {
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        if (p.waitFor() != 0) {
            throw new IOException("fio failed: " + text.strip());
        }
        String line = text.lines().filter(l -> l.startsWith("3;")).findFirst()
                .orElseThrow(() -> new IOException("no terse line in fio output: " + text.strip()));
        String[] f = line.split(";");
        // Terse v3, 1-based: read bandwidth (KiB/s) 7, read iops 8; write: 48 and 49.
        return bandwidth ? Double.parseDouble(f[write ? 47 : 6]) / 1024 : Double.parseDouble(f[write ? 48 : 7]);
    }

    /** A host file of {@code bytes} random bytes, read once so the kernel caches it. */
    private static void writeHostFile(Path host, long bytes) throws IOException {
        byte[] chunk = new byte[MIB];
        new SplittableRandom(2).nextBytes(chunk);
        try (var out = Files.newOutputStream(host)) {
            for (long at = 0; at < bytes; at += MIB) {
                out.write(chunk, 0, (int) Math.min(MIB, bytes - at));
            }
        }
        try (InputStream in = Files.newInputStream(host)) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
        }
    }
}
