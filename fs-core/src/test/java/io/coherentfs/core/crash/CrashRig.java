package io.coherentfs.core.crash;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.fault.FaultyDevice;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.journal.JournalOptions;
import io.coherentfs.core.vfs.Caller;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * A coherentfs on an image under target/test-images, through a {@link FaultyDevice} (power cuts,
 * injected faults) and a {@link CutDevice} (a cut at the Nth request). {@link #recover} plays the
 * reboot: the dead instance is closed while the device is still dead (so nothing it does lands),
 * then the device revives and a new instance mounts, replaying the journal.
 */
final class CrashRig implements AutoCloseable {
    final Path image;
    final FaultyDevice faulty;
    final CutDevice device;
    CoherentFs fs;
    /** statfs free blocks of the empty filesystem just after mkfs. */
    final long freeWhenEmpty;

    CrashRig(String name, long size, JournalOptions options) throws IOException {
        image = Path.of("target/test-images/crash-" + name + ".img").toAbsolutePath();
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, size);
        faulty = new FaultyDevice(DirectDevice.open(image));
        device = new CutDevice(faulty);
        CoherentFs.mkfs(device, "crash-" + name, new UUID(size, name.hashCode()), Caller.ROOT);
        fs = CoherentFs.open(device, new CoherentFs.Options(false, options));
        freeWhenEmpty = fs.statfs().freeBlocks();
    }

    /**
     * After a crash: closes the dead instance (ignoring its errors: every request fails while
     * the device is dead), revives the device and mounts a new instance over it.
     */
    CoherentFs recover(JournalOptions options) throws IOException {
        return recover(options, device -> { });
    }

    /** As {@link #recover(JournalOptions)}, running {@code beforeMount} on the revived device first. */
    CoherentFs recover(JournalOptions options, Consumer<BlockDevice> beforeMount) throws IOException {
        closeQuietly(fs);
        fs = null;
        device.disarm();
        faulty.clearFaults();
        faulty.revive();
        beforeMount.accept(device);
        fs = CoherentFs.open(device, new CoherentFs.Options(false, options));
        return fs;
    }

    static void closeQuietly(CoherentFs dead) {
        if (dead == null) {
            return;
        }
        // The machine is dead: abort its journal (as a failed commit would), so the close below
        // neither commits nor evicts; it stops the commit thread and frees the instance's memory.
        dead.meta().journal().abort(new IOException("simulated power cut"));
        try {
            dead.close();
        } catch (IOException | RuntimeException e) {
            // ignored: a dead instance's close may fail
        }
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
