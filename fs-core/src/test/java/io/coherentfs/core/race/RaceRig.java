package io.coherentfs.core.race;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.core.sync.RacePoints;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;

/**
 * A fresh image under target/ mounted with armable race points and a chosen coherence
 * configuration, for the mechanism race tests. {@link #reopen} mounts again with every mechanism
 * on and no race points (what a later mount would see).
 */
final class RaceRig implements AutoCloseable {
    final Path image;
    final RacePoints race = RacePoints.armable();
    final MeterRegistry metrics = new SimpleMeterRegistry();
    DirectDevice device;
    CoherentFs fs;

    RaceRig(String name, CoherenceConfig coherence) throws IOException {
        image = Path.of("target/test-images/race-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, 64L << 20);
        device = DirectDevice.open(image);
        CoherentFs.mkfs(device, "race", UUID.randomUUID(), Caller.ROOT);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT.withCoherence(coherence).withMetrics(metrics), race);
    }

    long create(String name) throws IOException {
        long ino = fs.mknod(Vfs.ROOT, name.getBytes(StandardCharsets.UTF_8), 0644, 0, Caller.ROOT).ino();
        fs.forget(ino, 1);
        return ino;
    }

    OpenFile open(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR);
    }

    /** A gauge of the engine's registry, by name. */
    double gauge(String name) {
        return metrics.get(name).gauge().value();
    }

    void reopen() throws IOException {
        race.close();
        fs.close();
        device.close();
        device = DirectDevice.open(image);
        fs = CoherentFs.open(device, CoherentFs.Options.DEFAULT);
    }

    @Override
    public void close() throws IOException {
        race.close();
        try {
            fs.close();
        } finally {
            device.close();
        }
    }
}
