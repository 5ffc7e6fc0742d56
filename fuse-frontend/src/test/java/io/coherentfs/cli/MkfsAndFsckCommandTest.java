package io.coherentfs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.fuse.ImageLock;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.meta.MetaStore;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import picocli.CommandLine;

/** {@code coherentfs mkfs} and {@code coherentfs fsck} run in-process against real image files. */
class MkfsAndFsckCommandTest {
    private Path image;

    record Run(int code, String out, String err) {
    }

    @BeforeEach
    void setUp(TestInfo info) throws IOException {
        image = Path.of("target/test-images/cli-" + info.getTestMethod().orElseThrow().getName() + ".img")
                .toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
    }

    private static Run run(Callable<Integer> command, String... args) {
        CommandLine cli = new CommandLine(command);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private static Run mkfs(String... args) {
        return run(new MkfsCommand(), args);
    }

    private static Run fsck(String... args) {
        return run(new FsckCommand(), args);
    }

    @Test
    void mkfsCreatesAnImageThatFsckFindsClean() throws IOException {
        Run made = mkfs("--size", "64m", "--label", "cli-test", image.toString());
        assertThat(made.code()).as(made.err()).isZero();
        assertThat(made.out()).contains("created coherentfs on " + image, "new image file", "16384 blocks",
                "journal:  256 blocks", "UUID:", "label:    cli-test");
        assertThat(Files.size(image)).isEqualTo(64L << 20);
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool()) {
            Superblock sb = MetaStore.readSuperblock(device, pool);
            assertThat(sb.label()).isEqualTo("cli-test");
            assertThat(made.out()).contains(sb.uuid().toString());
        }

        Run checked = fsck("-n", image.toString());
        assertThat(checked.code()).as(checked.out()).isZero();
        assertThat(checked.out()).contains("read-only check", "clean (exit 0)");
        assertThat(checked.err()).contains("Pass 1", "Pass 5");
        Run repairing = fsck("-f", "-y", image.toString());
        assertThat(repairing.code()).as(repairing.out()).isZero();
    }

    @Test
    void mkfsRefusesAMissingPathWithoutSize() {
        Run r = mkfs(image.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err().strip()).isEqualTo("coherentfs mkfs: " + image + " does not exist; give --size to create an image");
        assertThat(image).doesNotExist();
    }

    @Test
    void mkfsRefusesBadSizesAndLeavesNoFileBehind() {
        Run tiny = mkfs("--size", "1m", image.toString());
        assertThat(tiny.code()).isEqualTo(1);
        assertThat(tiny.err()).contains("minimum");
        Run junk = mkfs("--size", "lots", image.toString());
        assertThat(junk.code()).isEqualTo(1);
        assertThat(junk.err()).contains("not a size");
        assertThat(image).doesNotExist();
    }

    @Test
    void mkfsReplacesAnUnmountedCoherentfsWithoutAsking() {
        assertThat(mkfs("--size", "32m", image.toString()).code()).isZero();
        Run again = mkfs("--label", "second", image.toString());
        assertThat(again.code()).as(again.err()).isZero();
        assertThat(again.out()).contains("replaced: a coherentfs filesystem\n", "label:    second");
    }

    @Test
    void mkfsRefusesAnImageInUseEvenWithForce() throws Exception {
        assertThat(mkfs("--size", "32m", image.toString()).code()).isZero();
        try (ImageLock held = ImageLock.acquire(image, java.time.Duration.ZERO)) {
            Run refused = mkfs("--force", image.toString());
            assertThat(refused.code()).isEqualTo(1);
            assertThat(refused.err()).startsWith("coherentfs mkfs: " + image + " is in use by a coherentfs mount (")
                    .contains("already mounted");
        }
        assertThat(fsck("-n", image.toString()).code()).isZero();
    }

    @Test
    void mkfsRefusesAnExt4ImageWithoutForce() throws Exception {
        ImageFiles.createSparse(image, 32L << 20);
        Process p = new ProcessBuilder("mkfs.ext4", "-q", "-F", image.toString()).redirectErrorStream(true).start();
        String mkfsOutput = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(mkfsOutput).isZero();

        Run refused = mkfs(image.toString());
        assertThat(refused.code()).isEqualTo(1);
        assertThat(refused.err().strip()).isEqualTo("coherentfs mkfs: " + image
                + " already holds a ext2/3/4 filesystem; give --force to overwrite it");

        Run notOurs = fsck("-n", image.toString());
        assertThat(notOurs.code()).isEqualTo(8);
        assertThat(notOurs.out()).contains("not a coherentfs filesystem: the device holds ext2/3/4");

        Run forced = mkfs("--force", image.toString());
        assertThat(forced.code()).as(forced.err()).isZero();
        assertThat(fsck("-n", image.toString()).code()).isZero();
    }

    @Test
    void fsckRepairsADamagedBitmapAndExitsLikeE2fsck() throws IOException {
        assertThat(mkfs("--size", "32m", image.toString()).code()).isZero();
        long bitmapBlock;
        try (DirectDevice device = DirectDevice.open(image); AlignedBufferPool pool = new AlignedBufferPool();
                AlignedBuffer buf = pool.allocate(4096)) {
            bitmapBlock = MetaStore.readSuperblock(device, pool).layout().bitmapStart();
            device.read(bitmapBlock * 4096, buf.segment());
            buf.segment().set(ValueLayout.JAVA_BYTE, 2000, (byte) 0x77);
            device.write(bitmapBlock * 4096, buf.segment());
            device.flush();
        }
        Run ro = fsck("-n", image.toString());
        assertThat(ro.code()).as(ro.out()).isEqualTo(4);
        assertThat(ro.out()).contains("free-space bitmap", "block " + bitmapBlock, "not repaired (read-only check)",
                "ERRORS LEFT UNCORRECTED (exit 4)");

        Run fixed = fsck("-q", image.toString());
        assertThat(fixed.code()).as(fixed.out()).isEqualTo(1);
        assertThat(fixed.out()).contains("REPAIRED: rebuild the whole bitmap", "errors corrected (exit 1)");
        assertThat(fixed.err()).isEmpty();

        assertThat(fsck(image.toString()).code()).isZero();
    }

    @Test
    void fsckUsageAndOperationalErrors() {
        Run both = fsck("-n", "-y", image.toString());
        assertThat(both.code()).isEqualTo(FsckCommand.USAGE_ERROR);
        assertThat(both.err()).contains("-n and -y exclude each other");

        Run missing = fsck(image.toString());
        assertThat(missing.code()).isEqualTo(8);
        assertThat(missing.out()).contains("cannot open " + image);
    }
}
