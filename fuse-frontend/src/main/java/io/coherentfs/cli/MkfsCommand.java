package io.coherentfs.cli;

import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.format.FilesystemSignatures;
import io.coherentfs.core.format.Layout;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.fuse.ImageLock;
import io.coherentfs.fuse.MountException;
import io.coherentfs.fuse.Mounts;
import java.time.Duration;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs mkfs [--size SIZE] [--label L] [--force] IMAGE|DEVICE}: creates a coherentfs.
 *
 * <p>Non-interactive and careful: a missing path is created as a sparse image only when
 * {@code --size} is given. A mounted target is always refused (its image lock is held, or it
 * is the source of a FUSE mount). An unmounted coherentfs is replaced without asking, as test
 * suites reformat their scratch devices non-interactively; another recognizable filesystem or
 * partition table ({@link FilesystemSignatures}) is refused unless {@code --force}.
 * Exit status: 0 made, 1 refused or failed (one line on stderr says why).
 */
@Command(name = "mkfs", mixinStandardHelpOptions = true,
        description = "Create a coherentfs filesystem on an image file or a block device.")
public final class MkfsCommand implements Callable<Integer> {

    @Parameters(paramLabel = "IMAGE|DEVICE", description = "An image file (created with --size if missing) or a block device.")
    Path target;

    @Option(names = {"-s", "--size"}, paramLabel = "SIZE",
            description = "Size of the image file to create, or to grow a smaller one to (e.g. 1g, 512m).")
    String size;

    @Option(names = {"-L", "--label"}, paramLabel = "L", defaultValue = "",
            description = "Volume label, up to 64 bytes of UTF-8.")
    String label;

    @Option(names = {"-F", "--force"}, description = "Overwrite another filesystem or a partition table "
            + "(an unmounted coherentfs is replaced without it; a mounted one never is).")
    boolean force;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (label.getBytes(StandardCharsets.UTF_8).length > Superblock.LABEL_BYTES) {
            return fail(err, "label longer than " + Superblock.LABEL_BYTES + " bytes");
        }
        boolean created = false;
        if (!Files.exists(target)) {
            if (size == null) {
                return fail(err, target + " does not exist; give --size to create an image");
            }
            long bytes;
            try {
                bytes = ImageFiles.parseSize(size);
            } catch (IllegalArgumentException e) {
                return fail(err, e.getMessage());
            }
            if (bytes < Layout.MINIMUM_BYTES) {
                return fail(err, "size " + bytes + " is below the minimum of " + Layout.MINIMUM_BYTES + " bytes (8 MiB)");
            }
            ImageFiles.createSparse(target, bytes);
            created = true;
        } else if (size != null) {
            if (!Files.isRegularFile(target)) {
                return fail(err, "--size applies to image files only; " + target + " is not one");
            }
            try {
                ImageFiles.createSparse(target, ImageFiles.parseSize(size)); // grows a smaller file, keeps a larger one
            } catch (IllegalArgumentException e) {
                return fail(err, e.getMessage());
            }
        }
        boolean made = false;
        var mounted = Mounts.mountedFrom(target);
        if (mounted.isPresent()) {
            return fail(err, target + " is mounted on " + mounted.get().mountpoint() + "; unmount it first");
        }
        // Held for the whole format: a mount starting meanwhile waits for it (block devices are
        // also opened O_EXCL, which a mounted one refuses).
        try (ImageLock lock = ImageLock.acquire(target, Duration.ZERO);
                DirectDevice device = DirectDevice.open(target); AlignedBufferPool pool = new AlignedBufferPool()) {
            String found = FilesystemSignatures.detect(device, pool);
            if (found != null && !found.equals("coherentfs") && !force) {
                return fail(err, target + " already holds " + describe(found) + "; give --force to overwrite it");
            }
            Superblock sb = CoherentFs.mkfs(device, label, UUID.randomUUID(), new Caller(0, 0));
            made = true;
            Layout l = sb.layout();
            long bytes = l.blockCount() * Layout.BLOCK_SIZE;
            out.printf("created coherentfs on %s%s%n", target, created ? " (new image file)" : "");
            out.printf("size:     %d bytes (%s), %d blocks of %d bytes%n", bytes, Sizes.human(bytes), l.blockCount(),
                    Layout.BLOCK_SIZE);
            out.printf("journal:  %d blocks (%s) at block %d%n", l.journalBlocks(),
                    Sizes.human(l.journalBlocks() * Layout.BLOCK_SIZE), l.journalStart());
            out.printf("bitmap:   %d blocks at block %d; %d blocks for data and metadata%n", l.bitmapBlocks(),
                    l.bitmapStart(), l.dataBlocks());
            out.printf("UUID:     %s%n", sb.uuid());
            out.printf("label:    %s%n", sb.label().isEmpty() ? "(none)" : sb.label());
            if (found != null) {
                out.printf("replaced: %s%s%n", describe(found), found.equals("coherentfs") ? "" : " (--force)");
            }
            return 0;
        } catch (MountException e) {
            return fail(err, target + " is in use by a coherentfs mount (" + e.getMessage() + ")");
        } catch (IOException | RuntimeException e) {
            return fail(err, "cannot create a coherentfs on " + target + ": " + e.getMessage());
        } finally {
            if (created && !made) {
                Files.deleteIfExists(target);
            }
        }
    }

    private static String describe(String found) {
        return found.equals("coherentfs") ? "a coherentfs filesystem"
                : found.endsWith("table") || found.endsWith("sector") ? "a " + found
                : "a " + found + " filesystem";
    }

    private static int fail(PrintWriter err, String message) {
        err.println("coherentfs mkfs: " + message);
        err.flush();
        return 1;
    }
}
