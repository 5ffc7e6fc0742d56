package io.coherentfs.core.xattr;

import io.coherentfs.core.dir.DirentCodec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Extended attributes in the one xattr tree (docs/STORAGE.md).
 *
 * <h2>Key: 16 bytes, big-endian</h2>
 * inode (8), then position = name hash (48 bits) &lt;&lt; 15 | collision counter, as directory
 * entries use ({@link DirentCodec#nameHash}).
 *
 * <h2>Value: 512 bytes, little-endian</h2>
 * <pre>
 *   0   1  name length (1..255), the full name with its namespace prefix
 *   1   1  flags: 1 = the value is out of line, in its own data block
 *   2   2  value length (0..4096)
 *   4   4  zero
 *   8   8  value block (out of line only)
 *  16 255  name, zero-padded
 * 271 241  value, when it fits inline
 * </pre>
 */
public final class XattrCodec {
    public static final int KEY_SIZE = 16;
    public static final int VALUE_SIZE = 512;
    public static final int NAME_MAX = 255;
    public static final int INLINE_MAX = 241;
    /** The largest value this filesystem stores (one block), as ext4 without ea_inode. */
    public static final int VALUE_MAX = 4096;
    static final int FLAG_OUT_OF_LINE = 1;

    /** A decoded attribute; {@code inlineValue} is null when the value lives in {@code valueBlock}. */
    public record Xattr(long ino, long position, byte[] name, int valueLength, long valueBlock, byte[] inlineValue) {
        public boolean outOfLine() {
            return inlineValue == null;
        }
    }

    private XattrCodec() {}

    public static byte[] key(long ino, long position) {
        return ByteBuffer.allocate(KEY_SIZE).putLong(ino).putLong(position).array();
    }

    public static byte[] value(byte[] name, byte[] inlineValue, int valueLength, long valueBlock) {
        ByteBuffer b = ByteBuffer.allocate(VALUE_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) name.length).put((byte) (inlineValue == null ? FLAG_OUT_OF_LINE : 0)).putShort((short) valueLength)
                .putInt(0).putLong(inlineValue == null ? valueBlock : 0).put(name);
        if (inlineValue != null) {
            b.position(271);
            b.put(inlineValue);
        }
        return b.array();
    }

    public static Xattr decode(byte[] key, byte[] value) {
        ByteBuffer k = ByteBuffer.wrap(key);
        ByteBuffer v = ByteBuffer.wrap(value).order(ByteOrder.LITTLE_ENDIAN);
        int nameLength = v.get() & 0xff;
        boolean outOfLine = (v.get() & FLAG_OUT_OF_LINE) != 0;
        int valueLength = v.getShort() & 0xffff;
        v.getInt();
        long block = v.getLong();
        byte[] name = Arrays.copyOfRange(value, 16, 16 + nameLength);
        byte[] inline = outOfLine ? null : Arrays.copyOfRange(value, 271, 271 + valueLength);
        return new Xattr(k.getLong(0), k.getLong(8), name, valueLength, block, inline);
    }
}
