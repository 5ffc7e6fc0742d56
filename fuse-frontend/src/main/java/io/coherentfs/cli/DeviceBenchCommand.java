package io.coherentfs.cli;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.engine.IoEngineKind;
import io.coherentfs.cli.bench.DeviceLoad;
import io.coherentfs.cli.bench.DeviceLoad.Job;
import io.coherentfs.cli.bench.DeviceLoad.Result;
import io.coherentfs.cli.bench.Fio;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs device-bench}: the device layer against fio on the same file in the same run.
 * Each job runs with each of our engines and with fio's io_uring and libaio engines, one after
 * the other; the ratios divide our IOPS by fio's.
 */
@Command(name = "device-bench", mixinStandardHelpOptions = true,
        description = "Benchmark the O_DIRECT device layer against fio on the same image file.")
public final class DeviceBenchCommand implements Callable<Integer> {
    static final List<Job> JOBS = List.of(
            new Job("randread-4k-qd1", false, true, 4096, 1),
            new Job("randread-4k-qd32", false, true, 4096, 32),
            new Job("seqwrite-1m-qd8", true, false, 1 << 20, 8),
            new Job("seqread-1m-qd8", false, false, 1 << 20, 8));

    @Option(names = "--image", defaultValue = "coherentfs-bench.img",
            description = "Image file to run on; created and filled if missing (default: ${DEFAULT-VALUE}).")
    Path image;

    @Option(names = "--size", defaultValue = "1g", description = "Image size (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(names = "--runtime", defaultValue = "10", description = "Measured seconds per run (default: ${DEFAULT-VALUE}).")
    int runtime;

    @Option(names = "--ramp", defaultValue = "1", description = "Unmeasured warm-up seconds per run (default: ${DEFAULT-VALUE}).")
    int ramp;

    @Option(names = "--repeat", defaultValue = "3", description = "Runs per job and engine; the median is shown (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--no-fio", description = "Skip the fio reference runs.")
    boolean noFio;

    @Option(names = "--jobs", split = ",", description = "Only these jobs (default: all of ${COMPLETION-CANDIDATES}).",
            completionCandidates = JobNames.class)
    List<String> only;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    static final class JobNames implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return JOBS.stream().map(Job::name).iterator();
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        long bytes = ImageFiles.parseSize(size);
        boolean fio = !noFio && Fio.available();
        if (!noFio && !fio) {
            out.println("fio not found on PATH: printing our figures without the reference (install fio for ratios)");
        }
        layOut(out, bytes);
        out.printf("image %s, %s, %d s per run after %d s ramp; ratio = ours / fio%n",
                image.toAbsolutePath(), Sizes.human(bytes), runtime, ramp);
        out.printf("each figure is the median of %d runs; the runs of one job alternate between fio and us%n", repeat);
        String header = String.format(Locale.ROOT, "%-18s %-12s %10s %9s %12s %7s %12s %7s",
                "job", "engine", "IOPS", "MiB/s", "fio io_uring", "ratio", "fio libaio", "ratio");
        out.println(header);
        out.flush();
        for (Job job : JOBS) {
            if (only != null && !only.contains(job.name())) {
                continue;
            }
            List<Result> fioUring = new ArrayList<>();
            List<Result> fioAio = new ArrayList<>();
            List<Result> oursUring = new ArrayList<>();
            List<Result> oursPool = new ArrayList<>();
            for (int r = 0; r < repeat; r++) {
                if (fio) {
                    fioUring.add(runFio(out, job, "io_uring", r == 0));
                    fioAio.add(runFio(out, job, "libaio", r == 0));
                }
                oursUring.add(runOurs(job, IoEngineKind.IO_URING));
                oursPool.add(runOurs(job, IoEngineKind.THREAD_POOL));
            }
            Result refUring = median(fioUring);
            Result refAio = median(fioAio);
            java.util.Map<String, Result> ours = new java.util.LinkedHashMap<>();
            ours.put("io_uring", median(oursUring));
            ours.put("thread-pool", median(oursPool));
            for (var engine : ours.entrySet()) {
                Result r = engine.getValue();
                out.printf(Locale.ROOT, "%-18s %-12s %10.0f %9.1f %12s %7s %12s %7s%n", job.name(),
                        engine.getKey(), r.iops(), r.mibPerSecond(),
                        refUring == null ? "-" : String.format(Locale.ROOT, "%.0f", refUring.iops()),
                        ratio(r, refUring),
                        refAio == null ? "-" : String.format(Locale.ROOT, "%.0f", refAio.iops()),
                        ratio(r, refAio));
            }
            out.flush();
        }
        return 0;
    }

    /** The run with the median IOPS, or null for no runs. */
    private static Result median(List<Result> runs) {
        if (runs.isEmpty()) {
            return null;
        }
        List<Result> sorted = new ArrayList<>(runs);
        sorted.sort(java.util.Comparator.comparingDouble(Result::iops));
        return sorted.get(sorted.size() / 2);
    }

    private static String ratio(Result ours, Result reference) {
        return reference == null || reference.iops() == 0 ? "-"
                : String.format(Locale.ROOT, "%.2f", ours.iops() / reference.iops());
    }

    private Result runOurs(Job job, IoEngineKind kind) throws Exception {
        DirectDevice.Options options = DirectDevice.Options.DEFAULT.withEngine(kind).withQueueDepth(job.queueDepth());
        try (DirectDevice device = DirectDevice.open(image, options);
                AlignedBufferPool pool = new AlignedBufferPool(2 << 20)) {
            return DeviceLoad.run(device, pool, job, TimeUnit.SECONDS.toNanos(ramp), TimeUnit.SECONDS.toNanos(runtime));
        }
    }

    private Result runFio(PrintWriter out, Job job, String ioengine, boolean show) throws Exception {
        long bytes = Files.size(image);
        List<String> cmd = Fio.command(image.toAbsolutePath(), bytes, job, ioengine, ramp, runtime);
        if (show) {
            out.println("# " + String.join(" ", cmd));
            out.flush();
        }
        return Fio.run(cmd, job, runtime);
    }

    /** Creates the image and writes every block once, so reads hit real allocated data. */
    private void layOut(PrintWriter out, long bytes) throws Exception {
        if (Files.exists(image) && Files.size(image) >= bytes && Files.exists(layoutMarker())) {
            return;
        }
        out.printf("laying out %s (%s)%n", image, Sizes.human(bytes));
        out.flush();
        ImageFiles.createSparse(image, bytes);
        try (DirectDevice device = DirectDevice.open(image);
                AlignedBufferPool pool = new AlignedBufferPool(2 << 20);
                AlignedBuffer buf = pool.allocate(1 << 20)) {
            java.util.Random r = new java.util.Random(1);
            byte[] noise = new byte[1 << 20];
            for (long off = 0; off + (1 << 20) <= device.size(); off += 1 << 20) {
                r.nextBytes(noise);
                java.lang.foreign.MemorySegment.copy(noise, 0, buf.segment(), java.lang.foreign.ValueLayout.JAVA_BYTE, 0, noise.length);
                device.write(off, buf.segment());
            }
            device.flush();
        }
        Files.writeString(layoutMarker(), "laid out\n");
    }

    private Path layoutMarker() {
        return image.resolveSibling(image.getFileName() + ".laid-out");
    }
}
