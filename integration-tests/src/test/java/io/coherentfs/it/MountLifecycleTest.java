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
}
