package io.coherentfs.cli;

import io.coherentfs.fuse.MetricsEndpoints;
import io.coherentfs.fuse.MountException;
import io.coherentfs.fuse.Mounts;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs stats MOUNTPOINT [--raw]}: the running mount's metrics, read from its stats
 * socket ({@link MetricsEndpoints}), as tables: FUSE requests per operation (count, mean and
 * max latency, errors), bytes moved by buffered and direct opens, and every engine meter.
 */
@Command(name = "stats", mixinStandardHelpOptions = true,
        description = "Show the metrics of a running coherentfs mount.")
public final class StatsCommand implements Callable<Integer> {
    @Parameters(paramLabel = "MOUNTPOINT")
    Path mountpoint;

    @Option(names = "--raw", description = "Print the Prometheus text as the daemon serves it.")
    boolean raw;

    @Spec
    CommandSpec spec;

    private static final Pattern SAMPLE = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([^}]*)\\})?\\s+(\\S+)");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"([^\"]*)\"");

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        if (!Files.isDirectory(mountpoint)) {
            throw new MountException(mountpoint + " is not a directory");
        }
        Path real = mountpoint.toRealPath();
        var at = Mounts.at(real);
        if (at.isEmpty() || !Mounts.isFuse(at.get())) {
            throw new MountException(real + " is not a coherentfs mount");
        }
        String text = MetricsEndpoints.request(real, "stats");
        if (raw) {
            out.print(text);
            out.flush();
            return 0;
        }
        print(out, text);
        out.flush();
        return 0;
    }

    record Sample(String name, Map<String, String> labels, double value) {}

    static List<Sample> parse(String text, StringBuilder header) {
        List<Sample> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.startsWith("# coherentfs ")) {
                header.append(line.substring("# coherentfs ".length()));
                continue;
            }
            if (line.startsWith("#") || line.isBlank()) {
                continue;
            }
            Matcher m = SAMPLE.matcher(line);
            if (!m.find()) {
                continue;
            }
            Map<String, String> labels = new TreeMap<>();
            if (m.group(3) != null) {
                Matcher l = LABEL.matcher(m.group(3));
                while (l.find()) {
                    labels.put(l.group(1), l.group(2));
                }
            }
            double v;
            try {
                v = Double.parseDouble(m.group(4));
            } catch (NumberFormatException e) {
                continue;
            }
            out.add(new Sample(m.group(1), labels, v));
        }
        return out;
    }

    static void print(PrintWriter out, String text) {
        StringBuilder header = new StringBuilder();
        List<Sample> samples = parse(text, header);
        for (String kv : header.toString().split(" ")) {
            int eq = kv.indexOf('=');
            if (eq > 0) {
                out.printf("%-11s %s%n", kv.substring(0, eq) + ":", kv.substring(eq + 1));
            }
        }
        // FUSE requests per operation.
        Map<String, double[]> ops = new TreeMap<>(); // count, sum, max, errors
        Map<String, Double> bytes = new LinkedHashMap<>();
        Map<String, Double> errors = new TreeMap<>();
        List<Sample> rest = new ArrayList<>();
        for (Sample s : samples) {
            String op = s.labels().get("op");
            switch (s.name()) {
                case "coherentfs_fuse_requests_seconds_count" -> ops.computeIfAbsent(op, k -> new double[4])[0] = s.value();
                case "coherentfs_fuse_requests_seconds_sum" -> ops.computeIfAbsent(op, k -> new double[4])[1] = s.value();
                case "coherentfs_fuse_requests_seconds_max" -> ops.computeIfAbsent(op, k -> new double[4])[2] = s.value();
                case "coherentfs_fuse_errors_total" -> {
                    ops.computeIfAbsent(op, k -> new double[4])[3] += s.value();
                    errors.merge(op + " " + s.labels().get("errno"), s.value(), Double::sum);
                }
                case "coherentfs_fuse_io_bytes_bytes_sum", "coherentfs_fuse_io_bytes_sum" ->
                        bytes.put(op + " " + s.labels().get("path"), s.value());
                default -> {
                    if (!s.name().startsWith("coherentfs_fuse_io_bytes")) {
                        rest.add(s);
                    }
                }
            }
        }
        out.println();
        out.println("FUSE requests");
        out.printf("  %-12s %12s %12s %12s %8s%n", "operation", "count", "mean", "max", "errors");
        for (var e : ops.entrySet()) {
            double[] v = e.getValue();
            if (v[0] == 0) {
                continue;
            }
            out.printf("  %-12s %12d %12s %12s %8d%n", e.getKey(), (long) v[0], time(v[1] / v[0]), time(v[2]), (long) v[3]);
        }
        if (!errors.isEmpty()) {
            out.println();
            out.println("Errors");
            errors.forEach((k, v) -> out.printf("  %-30s %10d%n", k, v.longValue()));
        }
        out.println();
        out.println("Data moved");
        bytes.forEach((k, v) -> out.printf("  %-20s %14s%n", k, human(v)));
        out.println();
        out.println("Gauges and engine meters");
        for (Sample s : rest) {
            String labels = s.labels().isEmpty() ? "" : s.labels().toString();
            out.printf("  %-60s %14s%n", s.name() + labels, number(s.value()));
        }
    }

    static String time(double seconds) {
        if (seconds >= 1) {
            return String.format(Locale.ROOT, "%.2f s", seconds);
        }
        if (seconds >= 1e-3) {
            return String.format(Locale.ROOT, "%.2f ms", seconds * 1e3);
        }
        return String.format(Locale.ROOT, "%.1f us", seconds * 1e6);
    }

    static String human(double bytes) {
        return Sizes.human((long) bytes);
    }

    static String number(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : String.format(Locale.ROOT, "%.4g", v);
    }
}
