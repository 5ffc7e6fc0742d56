package io.coherentfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@code coherentfs device-check} through the real launcher, on a real image file. */
class DeviceCheckCliTest {
    private static final Path DIR = Path.of("target", "it-images").toAbsolutePath();

    @BeforeAll
    static void folder() throws Exception {
        Files.createDirectories(DIR);
    }

    private static Path image(String name, long size) throws Exception {
        Path p = DIR.resolve(name);
        Files.deleteIfExists(p);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    @Test
    void reportsGeometryEngineAndARoundTripAndLeavesTheImageAsItWas() throws Exception {
        Path img = image("check.img", 16 << 20);
        byte[] content = new byte[16 << 20];
        new java.util.Random(3).nextBytes(content);
        Files.write(img, content);

        Launcher.Outcome r = Launcher.run("device-check", img.toString());

        assertThat(r.exitCode()).as(r.stderr()).isZero();
        assertThat(r.stdout())
                .contains("kind:            regular image file")
                .contains("size:            16777216 bytes")
                .containsPattern("DIO alignment:   offset/length \\d+, memory \\d+ \\(from (statx|default)\\)")
                .containsPattern("IO engine:       (io_uring|thread-pool)")
                .contains("O_DIRECT:        in effect")
                .contains("round trip:      wrote, read back").contains(": OK");
        assertThat(r.stderr()).as("no log noise on a working machine").isEmpty();
        assertThat(Arrays.equals(Files.readAllBytes(img), content)).as("image unchanged").isTrue();
    }

    @Test
    void forcedThreadPoolEngineIsUsed() throws Exception {
        Path img = image("pool.img", 1 << 20);
        Launcher.Outcome r = Launcher.run("device-check", "--engine", "thread-pool", img.toString());
        assertThat(r.exitCode()).as(r.stderr()).isZero();
        assertThat(r.stdout()).contains("IO engine:       thread-pool");
    }

    @Test
    void missingImageIsOneClearLineAndExitOne() throws Exception {
        Launcher.Outcome r = Launcher.run("device-check", DIR.resolve("absent.img").toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.stderr().strip().lines()).last().asString()
                .startsWith("coherentfs: ").contains("absent.img does not exist");
    }

    @Test
    void tooSmallImageIsRefused() throws Exception {
        Path img = image("small.img", 4096);
        Launcher.Outcome r = Launcher.run("device-check", img.toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.stderr()).contains("too small");
    }

    @Test
    void unknownOptionAndUnknownEngineAreUsageErrors() throws Exception {
        Path img = image("opts.img", 1 << 20);
        Launcher.Outcome r = Launcher.run("device-check", "--frobnicate", img.toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.stderr()).contains("Unknown option: '--frobnicate'");
        Launcher.Outcome e = Launcher.run("device-check", "--engine", "warp", img.toString());
        assertThat(e.exitCode()).isEqualTo(1);
        assertThat(e.stderr()).contains("unknown IO engine 'warp'");
    }

    @Test
    void unknownSubcommandIsAUsageError() throws Exception {
        Launcher.Outcome r = Launcher.run("defragment");
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.stderr()).contains("defragment");
    }
}
