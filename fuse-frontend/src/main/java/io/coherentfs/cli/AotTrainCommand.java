package io.coherentfs.cli;

import io.coherentfs.fuse.Daemon;
import io.coherentfs.fuse.MountOptions;
import io.coherentfs.fuse.Mounts;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code coherentfs aot-train} (hidden): the training run behind the launcher's ahead-of-time
 * cache (JDK 25's {@code -XX:AOTCacheOutput}, JEP 483/514/515). The launcher runs it once per
 * build; every later start of the command loads and links the classes this run used, and starts
 * with its method profiles, from the cache instead of from the jars — which is most of the time a
 * mount takes (a mount starts two JVMs: the command and its daemon).
 *
 * <p>It does in one process what the commands do at their start: mkfs, fsck, and — as root with
 * /dev/fuse — a real mount of a scratch image by the daemon's own code, a few file operations
 * through it, and the unmount; without FUSE it opens the engine instead. Everything lives in a
 * temporary directory that is removed afterwards. Its output is for the launcher's log only.
 */
@Command(name = "aot-train", hidden = true, description = "Training run for the launcher's AOT cache.")
public final class AotTrainCommand implements Callable<Integer> {
    private static final long DEADLINE_NANOS = 60_000_000_000L;

    @Override
    public Integer call() throws Exception {
        Path dir = Files.createTempDirectory("coherentfs-aot-train");
        try {
            Path image = dir.resolve("train.img");
            Path mountpoint = Files.createDirectory(dir.resolve("mnt"));
            quiet("mkfs", "--size", "64m", image.toString());
            quiet("fsck", "-n", image.toString());
            quiet("mount", "--help");
            if (Mounts.isRoot() && Files.exists(Path.of("/dev/fuse"))) {
                mountAndUse(image, mountpoint);
            }
            quiet("fsck", "-n", image.toString());
            return 0;
        } finally {
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static void quiet(String... args) {
        PrintWriter nowhere = new PrintWriter(Writer.nullWriter());
        new CommandLine(new CoherentfsCommand()).setOut(nowhere).setErr(nowhere).execute(args);
    }

    /** Mounts with the daemon's code on a thread of this JVM, uses the mount, and unmounts it. */
    private static void mountAndUse(Path image, Path mountpoint) throws Exception {
        Daemon daemon = new Daemon(image, mountpoint, MountOptions.parse(List.of("cache_size=64m")));
        Thread serving = Thread.ofPlatform().name("aot-train-daemon").start(() -> {
            try {
                daemon.run();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        Path real = mountpoint.toRealPath();
        long deadline = System.nanoTime() + DEADLINE_NANOS;
        while (Mounts.at(real).isEmpty()) {
            if (!serving.isAlive() || System.nanoTime() - deadline > 0) {
                return; // no FUSE here after all: the engine was trained up to the mount
            }
            Thread.sleep(10); // the mount appears from libfuse's side; there is nothing to wait on
        }
        try {
            byte[] data = new byte[1 << 20];
            for (int i = 0; i < 4; i++) {
                Path d = Files.createDirectories(real.resolve("d" + i));
                Path f = d.resolve("f");
                Files.write(f, data);
                Files.readAllBytes(f);
                Files.getLastModifiedTime(f);
                try (Stream<Path> list = Files.list(d)) {
                    list.count();
                }
                Files.move(f, d.resolve("g"));
                Files.delete(d.resolve("g"));
            }
        } finally {
            Mounts.detach(real);
            serving.join(DEADLINE_NANOS / 1_000_000);
        }
    }
}
