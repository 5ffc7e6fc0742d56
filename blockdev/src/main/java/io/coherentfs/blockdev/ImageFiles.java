package io.coherentfs.blockdev;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;

/** Image files: the regular files coherentfs uses as devices. */
public final class ImageFiles {
    private ImageFiles() {}

    /**
     * Creates {@code path} (and its parent folders) as a sparse file of {@code size} bytes, or
     * grows an existing file to that size. Existing bytes are kept; a file larger than
     * {@code size} is left as it is.
     */
    public static void createSparse(Path path, long size) throws IOException {
        Path parent = path.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            if (f.length() < size) {
                f.setLength(size);
            }
        }
    }

    /**
     * Parses a size such as "1g", "512M", "64k", "4096" (binary units, case-insensitive, an
     * optional trailing "b" or "ib").
     */
    public static long parseSize(String text) {
        String s = text.trim().toLowerCase(java.util.Locale.ROOT);
        if (s.endsWith("ib")) {
            s = s.substring(0, s.length() - 2);
        } else if (s.endsWith("b")) {
            s = s.substring(0, s.length() - 1);
        }
        long unit = 1;
        if (!s.isEmpty()) {
            switch (s.charAt(s.length() - 1)) {
                case 'k' -> unit = 1L << 10;
                case 'm' -> unit = 1L << 20;
                case 'g' -> unit = 1L << 30;
                case 't' -> unit = 1L << 40;
                default -> unit = 1;
            }
            if (unit != 1) {
                s = s.substring(0, s.length() - 1);
            }
        }
        try {
            long n = Long.parseLong(s.trim());
            if (n <= 0 || n > Long.MAX_VALUE / unit) {
                throw new NumberFormatException();
            }
            return n * unit;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a size: '" + text + "' (examples: 1g, 512m, 65536)");
        }
    }
}
