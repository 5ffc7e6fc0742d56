package io.coherentfs.cli.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Runs fio on the same file and job as {@link DeviceLoad}, the reference every figure is divided by. */
public final class Fio {
    private Fio() {}

    /** True when an fio executable is on PATH. */
    public static boolean available() {
        try {
            Process p = new ProcessBuilder("fio", "--version").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** The fio command line for {@code job} with {@code ioengine}; printed so it can be re-run by hand. */
    public static List<String> command(Path file, long size, DeviceLoad.Job job, String ioengine, int rampSeconds,
            int runSeconds) {
        String rw = job.random() ? (job.write() ? "randwrite" : "randread") : (job.write() ? "write" : "read");
        List<String> cmd = new ArrayList<>(List.of("fio", "--name=" + job.name(), "--filename=" + file,
                "--size=" + size, "--direct=1", "--ioengine=" + ioengine, "--rw=" + rw,
                "--bs=" + job.blockSize(), "--iodepth=" + job.queueDepth(), "--time_based",
                "--ramp_time=" + rampSeconds, "--runtime=" + runSeconds, "--norandommap", "--randrepeat=0",
                "--output-format=terse", "--terse-version=3"));
        return cmd;
    }

    /** Runs fio and reads IOPS and bandwidth from its terse (v3) output. */
    public static DeviceLoad.Result run(List<String> command, DeviceLoad.Job job, int runSeconds)
            throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IOException("fio failed: " + out.strip());
        }
        String line = out.lines().filter(l -> l.startsWith("3;")).findFirst()
                .orElseThrow(() -> new IOException("no terse line in fio output: " + out.strip()));
        String[] f = line.split(";");
        // Terse v3, 1-based: read iops is field 8, read bandwidth (KiB/s) 7; write: 49 and 48.
        double iops = Double.parseDouble(f[job.write() ? 48 : 7]);
        double kibPerSecond = Double.parseDouble(f[job.write() ? 47 : 6]);
        return new DeviceLoad.Result(Math.round(iops * runSeconds), Math.round(kibPerSecond * 1024 * runSeconds), runSeconds);
    }
}
