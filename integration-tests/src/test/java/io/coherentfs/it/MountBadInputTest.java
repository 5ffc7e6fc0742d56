package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Every bad input to coherentfs mount: one clear line on stderr and a non-zero exit, nothing mounted. */
class MountBadInputTest {
    static final Path DIR = MountedImage.DIR.resolve("bad");
    static Path emptyDir;

    @BeforeAll
    static void dirs() throws Exception {
        Files.createDirectories(DIR);
        emptyDir = Files.createDirectories(DIR.resolve("mnt"));
    }

    private static Path file(String name, long size) throws Exception {
        Path p = DIR.resolve(name);
        Files.deleteIfExists(p);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    private static void assertOneLine(Launcher.Outcome r, int exit, String... fragments) throws Exception {
        assertThat(r.exitCode()).as(r.stderr()).isEqualTo(exit);
        String last = r.stderr().strip().lines().reduce((a, b) -> b).orElse("");
        assertThat(last).startsWith("coherentfs: ");
        for (String f : fragments) {
            assertThat(last).contains(f);
        }
        assertThat(io.coherentfs.fuse.Mounts.at(emptyDir.toRealPath())).isEmpty();
    }

    @Test
    void missingImage() throws Exception {
        assertOneLine(Launcher.run("mount", DIR.resolve("absent.img").toString(), emptyDir.toString()), 1,
                "absent.img does not exist");
    }

    @Test
    void tooSmallImage() throws Exception {
        assertOneLine(Launcher.run("mount", file("small.img", 1 << 20).toString(), emptyDir.toString()), 1,
                "small.img is too small");
    }

    @Test
    void notACoherentfsImage() throws Exception {
        Path zeros = file("zeros.img", 32 << 20);
        assertOneLine(Launcher.run("mount", zeros.toString(), emptyDir.toString(), "-o", "log=" + DIR.resolve("zeros.log")),
                1, "zeros.img is not a coherentfs image");
    }

    @Test
    void unknownOptionIsAUsageErrorNamingIt() throws Exception {
        assertOneLine(Launcher.run("mount", file("any.img", 32 << 20).toString(), emptyDir.toString(), "-o",
                "ro,frobnicate=3"), 2, "unknown mount option 'frobnicate=3'");
        assertOneLine(Launcher.run("mount", DIR.resolve("any.img").toString(), emptyDir.toString(), "-o",
                "metrics=10.1.2.3:9000"), 2, "loopback");
    }

    @Test
    void missingAndNonEmptyMountpoints() throws Exception {
        Path img = file("mp.img", 32 << 20);
        assertOneLine(Launcher.run("mount", img.toString(), DIR.resolve("nowhere").toString()), 1,
                "nowhere does not exist");
        Path full = Files.createDirectories(DIR.resolve("full"));
        Files.writeString(full.resolve("occupant"), "x");
        assertOneLine(Launcher.run("mount", img.toString(), full.toString()), 1, "is not empty");
    }

    @Test
    void busyMountpointAndAlreadyMountedImage() throws Exception {
        try (MountedImage m = MountedImage.create("busy", "64m")) {
            m.mount();
            long pid = m.daemonPid();
            // the same image on another directory: refused, naming where it is mounted
            assertOneLine(Launcher.run("mount", m.image.toString(), emptyDir.toString()), 1,
                    "busy.img is already mounted on " + m.mountpoint);
            // the daemon's own foreground mode refuses as well (what a second daemon would do)
            assertOneLine(Launcher.run("mount", "-f", m.image.toString(), emptyDir.toString()), 1,
                    "busy.img is already mounted on " + m.mountpoint);
            // and mkfs of the mounted image, even forced
            Launcher.Outcome mkfs = Launcher.run("mkfs", "--force", m.image.toString());
            assertThat(mkfs.exitCode()).isEqualTo(1);
            assertThat(mkfs.stderr().strip()).isEqualTo("coherentfs mkfs: " + m.image + " is mounted on "
                    + m.mountpoint + "; unmount it first");
            assertThat(m.daemonPid()).isEqualTo(pid);
            // another image on the busy mountpoint
            Path other = file("other.img", 32 << 20);
            Launcher.Outcome r = Launcher.run("mount", other.toString(), m.mountpoint.toString());
            assertThat(r.exitCode()).isEqualTo(1);
            assertThat(r.stderr().strip()).startsWith("coherentfs: ").contains("is busy");
            assertThat(m.isMounted()).isTrue();
        }
    }
}
