package io.coherentfs.core.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Formats images with the real mkfs tools and checks that we recognize what they made. */
class FilesystemSignaturesTest {

    private static String detectAfter(String name, long size, List<String> mkfs) throws Exception {
        Path image = Path.of("target/test-images/" + name + ".img").toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, size);
        if (mkfs != null) {
            List<String> cmd = new java.util.ArrayList<>(mkfs);
            cmd.add(image.toString());
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertThat(p.waitFor(2, TimeUnit.MINUTES)).isTrue();
            assertThat(p.exitValue()).as(String.join(" ", cmd) + ": " + out).isZero();
        }
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool()) {
            return FilesystemSignatures.detect(device, pool);
        }
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return Files.isExecutable(Path.of("/sbin", tool)) || Files.isExecutable(Path.of("/usr/sbin", tool));
    }

    private static String tool(String name) {
        return Files.isExecutable(Path.of("/usr/sbin", name)) ? "/usr/sbin/" + name
                : Files.isExecutable(Path.of("/sbin", name)) ? "/sbin/" + name : name;
    }

    @Test
    void anEmptyImageHoldsNothing() throws Exception {
        assertThat(detectAfter("sig-empty", 16L << 20, null)).isNull();
    }

    @Test
    void ext4MadeByMke2fsIsRecognized() throws Exception {
        assumeTrue(onPath("mkfs.ext4"), "e2fsprogs is installed by scripts/install-deps.sh");
        assertThat(detectAfter("sig-ext4", 16L << 20, List.of(tool("mkfs.ext4"), "-q", "-F")))
                .isEqualTo("ext2/3/4");
    }

    @Test
    void xfsMadeByMkfsXfsIsRecognized() throws Exception {
        assumeTrue(onPath("mkfs.xfs"), "xfsprogs is installed by scripts/install-deps.sh");
        assertThat(detectAfter("sig-xfs", 320L << 20, List.of(tool("mkfs.xfs"), "-q", "-f")))
                .isEqualTo("xfs");
    }
}
