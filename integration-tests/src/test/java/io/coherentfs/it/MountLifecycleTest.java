package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Mount, unmount and remount through every door: the CLI, mount(8) -t fuse.coherentfs, an
 * fstab line, umount, fusermount -u and SIGTERM; fsck is clean after each, contents survive, and
 * the metrics are served.
 */
class MountLifecycleTest {

    /** Writes a few files of random content and returns path -> SHA-256. */
    private static Map<String, String> populate(Path root, long seed) throws Exception {
        Random r = new Random(seed);
        Files.createDirectories(root.resolve("dir/sub"));
        for (String name : new String[] {"small", "dir/medium", "dir/sub/large"}) {
            byte[] b = new byte[name.equals("small") ? 100 : name.equals("dir/medium") ? 200_000 : 5_000_000];
            r.nextBytes(b);
            Files.write(root.resolve(name), b);
        }
        Files.createSymbolicLink(root.resolve("link"), Path.of("dir/medium"));
        return contents(root);
    }

    private static Map<String, String> contents(Path root) throws Exception {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                String rel = root.relativize(p).toString();
                if (Files.isSymbolicLink(p)) {
                    out.put(rel, "-> " + Files.readSymbolicLink(p));
                } else if (Files.isRegularFile(p)) {
                    out.put(rel, HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
                } else {
                    out.put(rel, "dir");
                }
            }
        }
        return out;
    }

    private static void assertFsckClean(MountedImage m) throws Exception {
        Launcher.Outcome r = m.fsck();
        assertThat(r.exitCode()).as("fsck -n: %s%s%s", r.stdout(), r.stderr(), m.logText()).isZero();
        assertThat(r.stdout()).contains("clean");
    }

    @Test
    void unmountFsckCleanRemountContentsIdentical() throws Exception {
        try (MountedImage m = MountedImage.create("remount", "256m")) {
            m.mount();
            Map<String, String> before = populate(m.mountpoint, 1);
            m.unmount();
            assertThat(m.logText()).contains("marked clean");
            assertFsckClean(m);
            m.mount();
            assertThat(contents(m.mountpoint)).isEqualTo(before);
            // fusermount -u unmounts as well
            MountedImage.Outcome u = MountedImage.run("fusermount", "-u", m.mountpoint.toString());
            assertThat(u.exit()).as(u.output()).isZero();
            m.awaitUnlocked();
            assertFsckClean(m);
        }
    }

    @Test
    void sigtermAndSigintUnmountWriteBackAndExitCleanly() throws Exception {
        try (MountedImage m = MountedImage.create("signals", "256m")) {
            for (String signal : new String[] {"TERM", "INT"}) {
                m.mount();
                Map<String, String> before = populate(m.mountpoint.resolve(signal), signal.length());
                long pid = m.daemonPid();
                MountedImage.Outcome k = MountedImage.run("kill", "-" + signal, Long.toString(pid));
                assertThat(k.exit()).as(k.output()).isZero();
                MountedImage.await(() -> ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true), "pid " + pid + " to exit");
                assertThat(m.isMounted()).as("unmounted after SIG" + signal).isFalse();
                assertThat(m.logText()).contains("SIG" + signal + ": unmounting").contains("marked clean");
                assertFsckClean(m);
                m.mount();
                assertThat(contents(m.mountpoint.resolve(signal))).isEqualTo(before);
                m.unmount();
            }
        }
    }

    /** mount.fuse runs `coherentfs` from a fixed PATH; the README's first command installs it there. */
    private static void requireInstalledCommand() throws Exception {
        Path installed = Path.of("/usr/local/bin/coherentfs");
        if (!Files.exists(installed, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            Files.createSymbolicLink(installed, Launcher.COMMAND); // what scripts/install-command.sh does
        }
        assertThat(installed.toRealPath()).as("/usr/local/bin/coherentfs must be this repository's launcher")
                .isEqualTo(Launcher.COMMAND.toRealPath());
    }

    @Test
    void mountTypeFuseCoherentfsAndFstabLine() throws Exception {
        requireInstalledCommand();
        try (MountedImage m = MountedImage.create("mountfuse", "256m")) {
            MountedImage.Outcome r = MountedImage.run("mount", "-t", "fuse.coherentfs", m.image.toString(),
                    m.mountpoint.toString(), "-o", "noatime,nosuid,log=" + m.log);
            assertThat(r.exit()).as(r.output() + m.logText()).isZero();
            assertThat(m.isMounted()).isTrue();
            Map<String, String> before = populate(m.mountpoint, 3);
            m.unmount();
            assertFsckClean(m);

            Path fstab = MountedImage.DIR.resolve("fstab");
            Files.writeString(fstab, "# test fstab\n" + m.image + " " + m.mountpoint
                    + " fuse.coherentfs defaults,noauto,_netdev,nodev,cache_size=64m,log=" + m.log + " 0 0\n");
            r = MountedImage.run("mount", "-T", fstab.toString(), m.mountpoint.toString());
            assertThat(r.exit()).as(r.output() + m.logText()).isZero();
            assertThat(m.isMounted()).isTrue();
            assertThat(contents(m.mountpoint)).isEqualTo(before);
            m.unmount();
            assertFsckClean(m);
        }
    }

    @Test
    void metricsOverHttpAndStatsCommand() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        try (MountedImage m = MountedImage.create("metrics", "256m")) {
            m.mount("metrics=127.0.0.1:" + port);
            byte[] data = new byte[1 << 20];
            Files.write(m.mountpoint.resolve("f"), data);
            assertThat(Files.readAllBytes(m.mountpoint.resolve("f"))).hasSize(data.length);

            HttpResponse<String> http = HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(http.statusCode()).isEqualTo(200);
            assertThat(http.body()).contains("coherentfs_fuse_requests_seconds_count{op=\"write\"}")
                    .contains("coherentfs_fuse_io_bytes");

            Launcher.Outcome stats = Launcher.run("stats", m.mountpoint.toString());
            assertThat(stats.exitCode()).as(stats.stderr()).isZero();
            assertThat(stats.stdout()).contains("image:      " + m.image).contains("FUSE requests")
                    .containsPattern("\\n  write +\\d+ ").containsPattern("write buffered +1\\.0 MiB");
        }
    }

    @Test
    void remountReadOnlyAndBackThroughMount8KeepsOneDaemon() throws Exception {
        requireInstalledCommand();
        try (MountedImage m = MountedImage.create("remountro", "256m")) {
            m.mount();
            long pid = m.daemonPid();
            Map<String, String> before = populate(m.mountpoint, 4);
            Path mp = m.mountpoint;
            try (var writer = java.nio.channels.FileChannel.open(mp.resolve("small"),
                    java.nio.file.StandardOpenOption.WRITE)) {
                MountedImage.Outcome busy = MountedImage.run("mount", "-o", "remount,ro", mp.toString());
                assertThat(busy.exit()).as(busy.output()).isNotZero();
                assertThat(busy.output()).contains("open for writing");
            }
            MountedImage.Outcome ro = MountedImage.run("mount", "-o", "remount,ro", mp.toString());
            assertThat(ro.exit()).as(ro.output() + m.logText()).isZero();
            assertThat(io.coherentfs.fuse.Mounts.at(mp).orElseThrow().options()).startsWith("ro");
            assertThat(m.daemonPid()).as("no second daemon").isEqualTo(pid);
            assertThatWriteFails(mp.resolve("new"));
            assertThat(contents(mp)).isEqualTo(before);
            // read-only means written back, committed and marked clean on disk while still mounted
            assertFsckClean(m);

            MountedImage.Outcome rw = MountedImage.run("mount", "-o", "remount,rw", mp.toString());
            assertThat(rw.exit()).as(rw.output() + m.logText()).isZero();
            assertThat(io.coherentfs.fuse.Mounts.at(mp).orElseThrow().options()).startsWith("rw");
            Files.writeString(mp.resolve("new"), "written after remount,rw\n");
            assertThat(m.daemonPid()).isEqualTo(pid);
            m.unmount();
            assertFsckClean(m);
            m.mount();
            assertThat(Files.readString(mp.resolve("new"))).isEqualTo("written after remount,rw\n");
        }
    }

    private static void assertThatWriteFails(Path p) {
        try {
            Files.writeString(p, "x");
        } catch (java.io.IOException e) {
            assertThat(e.getMessage()).contains("Read-only file system");
            return;
        }
        throw new AssertionError("a write to the read-only mount succeeded");
    }

    @Test
    void aNewMountOfAJustUnmountedImageWaitsForTheOldDaemon() throws Exception {
        try (MountedImage m = MountedImage.create("mountwait", "512m")) {
            m.mount("cache_size=512m");
            // dirty data the old daemon still has to write back after umount returns
            byte[] big = new byte[32 << 20];
            new Random(7).nextBytes(big);
            Files.write(m.mountpoint.resolve("big"), big);
            String sum = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(big));
            MountedImage.Outcome u = MountedImage.run("umount", m.mountpoint.toString());
            assertThat(u.exit()).as(u.output()).isZero();
            m.mount(); // at once: it waits for the old daemon's lock rather than refusing
            assertThat(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(Files.readAllBytes(m.mountpoint.resolve("big"))))).isEqualTo(sum);
            m.unmount();
            assertFsckClean(m);
        }
    }

    /**
     * A block device (a loop device over an image): fuseblk by default, whose umount waits for the
     * daemon to write back; plain fuse with nofuseblk; a second mount and mkfs are refused.
     */
    @Test
    void blockDeviceMountsAsFuseblkAndUmountWaitsForWriteBack() throws Exception {
        try (MountedImage m = MountedImage.create("blockdev", "256m")) {
            MountedImage.Outcome lo = MountedImage.run("losetup", "--find", "--show", m.image.toString());
            assertThat(lo.exit()).as("losetup: " + lo.output()).isZero();
            String dev = lo.output().strip();
            try {
                String mp = m.mountpoint.toString();
                Launcher.Outcome r = Launcher.run("mount", dev, mp, "-o", "log=" + m.log + ",cache_size=256m");
                assertThat(r.exitCode()).as(r.stderr() + m.logText()).isZero();
                assertThat(io.coherentfs.fuse.Mounts.at(m.mountpoint).orElseThrow().fstype())
                        .isEqualTo("fuseblk.coherentfs");
                Map<String, String> before = populate(m.mountpoint, 5);
                assertThat(Launcher.run("mkfs", dev).stderr()).contains("is mounted on " + mp);
                MountedImage.Outcome u = MountedImage.run("umount", mp);
                assertThat(u.exit()).as(u.output()).isZero();
                // fuseblk: umount returned after the daemon answered FUSE_DESTROY, i.e. after the
                // engine was closed — no waiting for the lock before fsck
                assertThat(m.logText()).contains("marked clean");
                Launcher.Outcome fsck = Launcher.run("fsck", "-n", dev);
                assertThat(fsck.exitCode()).as(fsck.stdout() + fsck.stderr()).isZero();

                r = Launcher.run("mount", dev, mp, "-o", "nofuseblk,log=" + m.log);
                assertThat(r.exitCode()).as(r.stderr() + m.logText()).isZero();
                assertThat(io.coherentfs.fuse.Mounts.at(m.mountpoint).orElseThrow().fstype())
                        .isEqualTo("fuse.coherentfs");
                assertThat(contents(m.mountpoint)).isEqualTo(before);
                u = MountedImage.run("umount", mp);
                assertThat(u.exit()).as(u.output()).isZero();
                // plain fuse: umount does not wait; the daemon's lock on the device node goes last
                MountedImage.await(() -> {
                    try {
                        return !io.coherentfs.fuse.ImageLock.isLocked(Path.of(dev));
                    } catch (java.io.IOException e) {
                        throw new IllegalStateException(e);
                    }
                }, "the daemon of " + dev + " to exit");
                fsck = Launcher.run("fsck", "-n", dev);
                assertThat(fsck.exitCode()).as(fsck.stdout() + fsck.stderr()).isZero();
            } finally {
                if (io.coherentfs.fuse.Mounts.at(m.mountpoint).isPresent()) {
                    MountedImage.run("umount", m.mountpoint.toString());
                    m.awaitUnlocked();
                }
                MountedImage.run("losetup", "-d", dev);
            }
        }
    }
}
