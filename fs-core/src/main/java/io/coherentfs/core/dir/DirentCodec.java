package io.coherentfs.core.dir;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Directory entries in the one directory tree (docs/STORAGE.md). Names are byte strings, as
 * on Linux: any bytes but NUL and '/', 1..255 of them.
 *
 * <h2>Key: 16 bytes, big-endian (so the tree's unsigned byte order is numeric order)</h2>
 * <pre>
 *   0  8  parent directory inode
 *   8  8  position: name hash (48 bits, never 0) &lt;&lt; 15 | collision counter (15 bits)
 * </pre>
 * Names with the same 48-bit hash in one directory take counters 0, 1, 2, ...; a lookup scans
 * the (nearly always one) entries of its hash. The position is also the readdir cookie: an
 * entry's d_off is its position + 1, so a reader resumes at the first key at or after it, and
 * the cookie stays valid whatever is created or removed meanwhile. Positions are at least
 * 2^15, above the cookies 1 and 2 that "." and ".." use.
 *
 * <h2>Value: 265 bytes</h2>
 * <pre>
 *   0    8  child inode (little-endian)
 *   8    1  file type (the S_IFMT bits &gt;&gt; 12, as dirent's d_type)
 *   9    1  name length (1..255)
 *  10  255  name, zero-padded
 * </pre>
 */
public final class DirentCodec {
    public static final int KEY_SIZE = 16;
    public static final int VALUE_SIZE = 265;
    public static final int NAME_MAX = 255;
    public static final int COUNTER_BITS = 15;
    public static final int MAX_COUNTER = (1 << COUNTER_BITS) - 1;
    private static final long HASH_MASK = (1L << 48) - 1;

    /** A decoded entry. */
    public record Dirent(long parent, long position, long child, int type, byte[] name) {
        public String nameString() {
            return new String(name, StandardCharsets.UTF_8);
        }
    }

    private DirentCodec() {}

    /**
     * The 48-bit hash of a name (FNV-1a 64 folded to 48 bits, 0 mapped to 1). Fixed forever:
     * it is part of the on-disk format.
     */
    public static long nameHash(byte[] name) {
        long h = 0xcbf29ce484222325L;
        for (byte b : name) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        long folded = (h ^ (h >>> 48)) & HASH_MASK;
        return folded == 0 ? 1 : folded;
    }

    public static long position(long hash, int counter) {
        if (counter < 0 || counter > MAX_COUNTER) {
            throw new IllegalArgumentException("collision counter " + counter);
        }
        return (hash << COUNTER_BITS) | counter;
    }

    public static byte[] key(long parent, long position) {
        return ByteBuffer.allocate(KEY_SIZE).putLong(parent).putLong(position).array();
    }

    public static long keyParent(byte[] key) {
        return ByteBuffer.wrap(key).getLong(0);
    }

    public static long keyPosition(byte[] key) {
        return ByteBuffer.wrap(key).getLong(8);
    }

    public static byte[] value(long child, int type, byte[] name) {
        checkName(name);
        ByteBuffer b = ByteBuffer.allocate(VALUE_SIZE).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(child).put((byte) type).put((byte) name.length).put(name);
        return b.array();
    }

    public static Dirent decode(byte[] key, byte[] value) {
        ByteBuffer b = ByteBuffer.wrap(value).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        long child = b.getLong();
        int type = b.get() & 0xff;
        int length = b.get() & 0xff;
        if (length == 0) {
            throw new IllegalArgumentException("directory entry with an empty name");
        }
        return new Dirent(keyParent(key), keyPosition(key), child, type, Arrays.copyOfRange(value, 10, 10 + length));
    }

    /**
     * Checks a name as Linux filesystems do.
     *
     * @throws IllegalArgumentException for an empty name, or one with NUL or '/'
     * @throws NameTooLongException past {@link #NAME_MAX} bytes
     */
    public static void checkName(byte[] name) {
        if (name.length == 0) {
            throw new IllegalArgumentException("empty file name");
        }
        if (name.length > NAME_MAX) {
            throw new NameTooLongException(name.length);
        }
        for (byte b : name) {
            if (b == 0 || b == '/') {
                throw new IllegalArgumentException("file name contains " + (b == 0 ? "NUL" : "'/'"));
            }
        }
    }

    /** A name longer than {@link #NAME_MAX} bytes; the filesystem answers ENAMETOOLONG. */
    public static final class NameTooLongException extends IllegalArgumentException {
        public NameTooLongException(int length) {
            super("file name of " + length + " bytes is longer than " + NAME_MAX);
        }
    }
}
