package io.coherentfs.blockdev;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Fresh sparse image files under target/test-images, one per test. */
public final class TestImages {
    private TestImages() {}

    public static Path fresh(String name, long size) throws IOException {
        Path path = Path.of("target", "test-images", name + ".img").toAbsolutePath();
        Files.deleteIfExists(path);
        ImageFiles.createSparse(path, size);
        return path;
    }
}
