package io.coherentfs.core.vfs;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;

/** A freshly formatted image file under target/, mounted; reopen() unmounts and mounts again. */
final class FsRig implements AutoCloseable {
    final Path image;
    DirectDevice device;
    CoherentFs fs;

    FsRig(String name, long size) throws IOException {
        image = Path.of("target/test-images/" + name + ".img").toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, size);
        device = DirectDevice.open(image);
        CoherentFs.mkfs(device, name.substring(0, Math.min(60, name.length())), UUID.randomUUID(), Caller.ROOT);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
    }

    private FsRig(Path image) throws IOException {
        this.image = image;
        device = DirectDevice.open(image);
        fs = null;
    }

    /** The image an earlier rig made, opened but not mounted (for fsck). */
    static FsRig existing(String name) throws IOException {
        return new FsRig(Path.of("target/test-images/" + name + ".img").toAbsolutePath());
    }

    void reopen() throws IOException {
        fs.close();
        device.close();
        device = DirectDevice.open(image);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
    }

    static byte[] n(String name) {
        return name.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws IOException {
        try {
            if (fs != null) {
                fs.close();
            }
        } finally {
            device.close();
        }
    }
}
