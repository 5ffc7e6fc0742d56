package io.coherentfs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** {@code coherentfs meta-bench} in process, small. */
class MetaBenchCommandTest {
    @Test
    void runsEveryPhaseWithTheReferenceAndRemovesItsImage() throws Exception {
        Path image = Path.of("target/test-images/cli-meta-bench.img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = new CommandLine(new MetaBenchCommand());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));

        int code = cli.execute("--image", image.toString(), "--size", "256m", "--files", "2000", "--per-dir", "500");

        assertThat(code).as(err.toString()).isZero();
        String text = out.toString();
        assertThat(text).contains("2000 empty files in 4 directories");
        for (String phase : new String[] {"mkdir", "create", "stat", "unlink", "rmdir", "sync"}) {
            assertThat(text).containsPattern("(?m)^" + phase + " +\\d+ +\\d+\\.\\d{3} +\\d+ +\\d+\\.\\d{3} +\\d+ +\\d+\\.\\d{2}$");
        }
        assertThat(text).containsPattern("(?m)^create +2000 ");
        assertThat(text).contains("reference:  java.nio");
        assertThat(image).doesNotExist();
        try (var left = Files.list(image.getParent())) {
            assertThat(left.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith("meta-bench-ref-"));
        }
    }

    @Test
    void withoutTheReferenceItPrintsOurFiguresOnly() throws Exception {
        Path image = Path.of("target/test-images/cli-meta-bench-noref.img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        StringWriter out = new StringWriter();
        CommandLine cli = new CommandLine(new MetaBenchCommand());
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(new StringWriter()));

        int code = cli.execute("--image", image.toString(), "--size", "64m", "--files", "300", "--no-reference",
                "--keep-image");

        assertThat(code).isZero();
        assertThat(out.toString()).containsPattern("(?m)^unlink +300 +\\d+\\.\\d{3} +\\d+$").doesNotContain("ratio");
        assertThat(image).exists();
        Files.delete(image);
    }
}
