package io.coherentfs.cli;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Comparator;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs meta-bench}: metadata operations through the engine's {@link Vfs}, in process
 * (no FUSE): formats an image, creates N empty files in a tree of directories, stats each
 * (lookup + getattr), unlinks each, and syncs, printing each phase's rate. The same workload then
 * runs through java.nio on the filesystem holding the image (a folder next to it), so the ratio
 * has an anchor measured in the same run. One thread; no warm-up beyond the phases themselves.
 */
@Command(name = "meta-bench", mixinStandardHelpOptions = true,
        description = "Benchmark metadata operations (create, stat, unlink) through the engine against java.nio.")
public final class MetaBenchCommand implements Callable<Integer> {
    @Option(names = "--image", defaultValue = "coherentfs-meta-bench.img",
            description = "Image file to format and run on (default: ${DEFAULT-VALUE}); removed afterwards if the run created it.")
    Path image;

    @Option(names = "--size", defaultValue = "2g", description = "Image size (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(names = "--files", defaultValue = "100000", description = "Files to create, stat and unlink (default: ${DEFAULT-VALUE}).")
    int files;

    @Option(names = "--per-dir", defaultValue = "1000", description = "Files per directory (default: ${DEFAULT-VALUE}).")
    int perDir;

    @Option(names = "--no-reference", description = "Skip the java.nio reference run.")
    boolean noReference;

    @Option(names = "--keep-image", description = "Keep the image file even if this run created it.")
    boolean keepImage;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /** One phase's figures. */
    record Phase(String name, long ops, long nanos) {
        double seconds() {
            return nanos / 1e9;
        }

        double rate() {
            return nanos == 0 ? Double.NaN : ops / seconds();
        }
    }

    /** The phases of one run, in order: mkdir, create, stat, unlink, rmdir, sync. */
    record Result(Phase mkdir, Phase create, Phase stat, Phase unlink, Phase rmdir, Phase sync) {
        Phase[] phases() {
            return new Phase[] {mkdir, create, stat, unlink, rmdir, sync};
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        if (files < 1 || perDir < 1) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--files and --per-dir must be positive");
        }
        long bytes = ImageFiles.parseSize(size);
        Path img = image.toAbsolutePath();
        int dirs = (files + perDir - 1) / perDir;
        boolean created = !Files.exists(img);
        out.printf(Locale.ROOT, "meta-bench: %d empty files in %d directories (up to %d each), one thread%n", files,
                dirs, perDir);
        Result ours;
        try {
            ImageFiles.createSparse(img, bytes);
            ours = runEngine(img, dirs);
        } finally {
            if (created && !keepImage) {
                Files.deleteIfExists(img);
            }
        }
        out.printf(Locale.ROOT, "coherentfs: image %s (%s), engine in process through the Vfs API%n", img,
                Sizes.human(bytes));
        Result ref = null;
        String refWhere = null;
        if (!noReference) {
            Path parent = img.getParent() == null ? Path.of(".").toAbsolutePath() : img.getParent();
            Path dir = Files.createTempDirectory(parent, "meta-bench-ref-");
            try {
                refWhere = dir + " (" + Files.getFileStore(dir).type() + ")";
                ref = runNio(dir, dirs);
            } finally {
                deleteTree(dir);
            }
            out.printf(Locale.ROOT, "reference:  java.nio (Files.createFile / readAttributes / delete) in %s%n", refWhere);
        }
        out.printf(Locale.ROOT, "%-7s %9s %11s %12s", "phase", "ops", "seconds", "ops/s");
        if (ref != null) {
            out.printf(Locale.ROOT, " %11s %12s %8s", "ref s", "ref ops/s", "ratio");
        }
        out.println();
        Phase[] mine = ours.phases();
        Phase[] theirs = ref == null ? null : ref.phases();
        for (int i = 0; i < mine.length; i++) {
            Phase p = mine[i];
            out.printf(Locale.ROOT, "%-7s %9d %11.3f %12.0f", p.name(), p.ops(), p.seconds(), p.rate());
            if (theirs != null) {
                Phase q = theirs[i];
                out.printf(Locale.ROOT, " %11.3f %12.0f %8.2f", q.seconds(), q.rate(), p.rate() / q.rate());
            }
            out.println();
        }
        if (ref != null) {
            out.println("ratio = coherentfs ops/s / reference ops/s (above 1: coherentfs is faster)");
        }
        out.flush();
        return 0;
    }

    private static byte[] name(String prefix, int i) {
        return (prefix + i).getBytes(StandardCharsets.UTF_8);
    }

    /** The workload through the engine on a freshly formatted image. */
    Result runEngine(Path img, int dirs) throws IOException {
        try (DirectDevice device = DirectDevice.open(img)) {
            CoherentFs.mkfs(device, "meta-bench", UUID.randomUUID(), Caller.ROOT);
            long[] dirIno = new long[dirs];
            Phase mkdir;
            Phase create;
            Phase stat;
            Phase unlink;
            Phase rmdir;
            Phase sync;
            try (CoherentFs fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT)) {
                long t0 = System.nanoTime();
                for (int d = 0; d < dirs; d++) {
                    Attr a = fs.mkdir(Vfs.ROOT, name("d", d), 0755, Caller.ROOT);
                    dirIno[d] = a.ino();
                    fs.forget(a.ino(), 1);
                }
                long t1 = System.nanoTime();
                mkdir = new Phase("mkdir", dirs, t1 - t0);
                for (int i = 0; i < files; i++) {
                    Attr a = fs.mknod(dirIno[i / perDir], name("f", i), 0100644, 0, Caller.ROOT);
                    fs.forget(a.ino(), 1);
                }
                long t2 = System.nanoTime();
                create = new Phase("create", files, t2 - t1);
                for (int i = 0; i < files; i++) {
                    Attr a = fs.lookup(dirIno[i / perDir], name("f", i));
                    Attr b = fs.getattr(a.ino());
                    if (b.size() != 0 || !((b.mode() & 0170000) == 0100000)) {
                        throw new IllegalStateException("f" + i + " is not an empty regular file: " + b);
                    }
                    fs.forget(a.ino(), 1);
                }
                long t3 = System.nanoTime();
                stat = new Phase("stat", files, t3 - t2);
                for (int i = 0; i < files; i++) {
                    fs.unlink(dirIno[i / perDir], name("f", i));
                }
                long t4 = System.nanoTime();
                unlink = new Phase("unlink", files, t4 - t3);
                for (int d = 0; d < dirs; d++) {
                    fs.rmdir(Vfs.ROOT, name("d", d));
                }
                long t5 = System.nanoTime();
                rmdir = new Phase("rmdir", dirs, t5 - t4);
                fs.sync();
                sync = new Phase("sync", 1, System.nanoTime() - t5);
            }
            return new Result(mkdir, create, stat, unlink, rmdir, sync);
        }
    }

    /** The same workload through java.nio under {@code root}. */
    Result runNio(Path root, int dirs) throws IOException {
        Path[] dir = new Path[dirs];
        long t0 = System.nanoTime();
        for (int d = 0; d < dirs; d++) {
            dir[d] = Files.createDirectory(root.resolve("d" + d));
        }
        long t1 = System.nanoTime();
        for (int i = 0; i < files; i++) {
            Files.createFile(dir[i / perDir].resolve("f" + i));
        }
        long t2 = System.nanoTime();
        for (int i = 0; i < files; i++) {
            BasicFileAttributes a = Files.readAttributes(dir[i / perDir].resolve("f" + i), BasicFileAttributes.class);
            if (a.size() != 0 || !a.isRegularFile()) {
                throw new IllegalStateException("f" + i + " is not an empty regular file");
            }
        }
        long t3 = System.nanoTime();
        for (int i = 0; i < files; i++) {
            Files.delete(dir[i / perDir].resolve("f" + i));
        }
        long t4 = System.nanoTime();
        for (int d = 0; d < dirs; d++) {
            Files.delete(dir[d]);
        }
        long t5 = System.nanoTime();
        syncfs(root);
        long t6 = System.nanoTime();
        return new Result(new Phase("mkdir", dirs, t1 - t0), new Phase("create", files, t2 - t1),
                new Phase("stat", files, t3 - t2), new Phase("unlink", files, t4 - t3), new Phase("rmdir", dirs, t5 - t4),
                new Phase("sync", 1, t6 - t5));
    }

    /** syncfs(2) of the filesystem holding {@code dir}, through coreutils' {@code sync -f}. */
    private static void syncfs(Path dir) throws IOException {
        Process p = new ProcessBuilder("sync", "-f", dir.toString()).redirectErrorStream(true).start();
        try {
            p.getInputStream().readAllBytes();
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IOException("sync -f " + dir + " failed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while syncing " + dir, e);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
