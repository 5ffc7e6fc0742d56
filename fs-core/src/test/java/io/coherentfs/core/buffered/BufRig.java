package io.coherentfs.core.buffered;

import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.fsck.Fsck;
import io.coherentfs.core.fsck.FsckReport;
import io.coherentfs.core.vfs.Caller;
import io.coherentfs.core.vfs.OpenFile;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;

/**
 * A freshly formatted image under target/test-images mounted with a chosen page-cache budget;
 * {@link #reopen} unmounts, runs a read-only fsck on the image (must be clean) and mounts again.
 */
final class BufRig implements AutoCloseable {
    static final int PAGE = 4096;
    static final int EFAULT = 14, ENOSPC = 28, ENXIO = 6, EBADF = 9;

    final Path image;
    final CoherentFs.Options options;
    DirectDevice device;
    CoherentFs fs;

    BufRig(String name, long imageBytes, long cacheBytes) throws IOException {
        image = Path.of("target/test-images/buffered-" + name + ".img").toAbsolutePath();
        Files.createDirectories(image.getParent());
        Files.deleteIfExists(image);
        ImageFiles.createSparse(image, imageBytes);
        device = DirectDevice.open(image);
        CoherentFs.mkfs(device, "buffered", UUID.randomUUID(), Caller.ROOT);
        options = CoherentFs.Options.DEFAULT.withCacheBytes(cacheBytes);
        fs = CoherentFs.open(device, options);
    }

    /** Unmounts (writes everything back), checks the image with a read-only fsck and mounts again. */
    void reopen(String where) throws IOException {
        fs.close();
        fs = null;
        assertFsckClean(device, where);
        device.close();
        device = DirectDevice.open(image);
        fs = CoherentFs.open(device, options);
    }

    static void assertFsckClean(BlockDevice device, String where) {
        FsckReport report = Fsck.run(device, Fsck.Options.READ_ONLY);
        if (!report.clean()) {
            throw new AssertionError(where + ": fsck not clean:\n" + report);
        }
    }

    /** Creates a regular file in the root (its lookup is given back at once). */
    long create(String name) throws IOException {
        long ino = fs.mknod(Vfs.ROOT, n(name), 0644, 0, Caller.ROOT).ino();
        fs.forget(ino, 1);
        return ino;
    }

    OpenFile open(long ino) throws IOException {
        return fs.open(ino, OpenFile.O_RDWR);
    }

    static byte[] n(String name) {
        return name.getBytes(StandardCharsets.UTF_8);
    }

    /** Writes all of {@code data} at {@code offset}; fails the test on a short write. */
    static void writeFully(Vfs fs, OpenFile f, long offset, byte[] data) throws IOException {
        int n = fs.write(f, offset, MemorySegment.ofArray(data));
        if (n != data.length) {
            throw new AssertionError("short write: " + n + " of " + data.length + " at " + offset);
        }
    }

    /** Reads {@code length} bytes at {@code offset} (fewer at end of file). */
    static byte[] read(Vfs fs, OpenFile f, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        int n = fs.read(f, offset, MemorySegment.ofArray(out));
        return n == length ? out : java.util.Arrays.copyOf(out, n);
    }

    /** The whole file through an open file, checking that getattr's size and read's end agree. */
    static byte[] readAll(Vfs fs, OpenFile f) throws IOException {
        long size = fs.getattr(f.ino()).size();
        byte[] out = read(fs, f, 0, (int) size);
        if (out.length != size) {
            throw new AssertionError("inode " + f.ino() + ": read returned " + out.length + " bytes of a "
                    + size + "-byte file");
        }
        byte[] past = read(fs, f, size, 1);
        if (past.length != 0) {
            throw new AssertionError("inode " + f.ino() + ": read past the size " + size + " returned data");
        }
        return out;
    }

    /** Loads through a mapped view (direct memory, as a process would touch it). */
    static byte[] load(io.coherentfs.core.vfs.MappedView view, long position, int length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(Math.max(1, length));
            view.load(position, seg.asSlice(0, length));
            return seg.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    static void store(io.coherentfs.core.vfs.MappedView view, long position, byte[] data) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(Math.max(1, data.length));
            MemorySegment.copy(data, 0, seg, ValueLayout.JAVA_BYTE, 0, data.length);
            view.store(position, seg.asSlice(0, data.length));
        }
    }

    static int errno(Throwable e) {
        return e instanceof ErrnoException x ? x.errno() : -1;
    }

    /** Bytes that are a function of (stream, offset, generation), never all zero in a run. */
    static byte pattern(long stream, long offset, long generation) {
        long x = stream * 0x9E3779B97F4A7C15L ^ generation * 0xC2B2AE3D27D4EB4FL ^ (offset >>> 3) * 0x165667B19E3779F9L;
        x ^= x >>> 33;
        x *= 0xFF51AFD7ED558CCDL;
        x ^= x >>> 33;
        x *= 0xC4CEB9FE1A85EC53L;
        x ^= x >>> 33;
        byte b = (byte) (x >>> ((offset & 7) * 8));
        return b == 0 ? 1 : b;
    }

    static byte[] data(long stream, long offset, int length, long generation) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = pattern(stream, offset + i, generation);
        }
        return b;
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
