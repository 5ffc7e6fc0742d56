package io.coherentfs.core;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.alloc.Extent;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeCursor;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.xattr.XattrCodec;
import io.coherentfs.core.xattr.XattrCodec.Xattr;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Extended attributes ({@link XattrCodec} has the format). Namespaces user., trusted., security.
 * and system. are stored; others are EOPNOTSUPP, and so are the POSIX ACLs
 * ({@code system.posix_acl_access}, {@code system.posix_acl_default}): permissions are the mode
 * bits alone, as on ext4 mounted noacl, so that {@code cp -a} and friends fall back to chmod
 * instead of storing an ACL that nothing would enforce and that would not change the mode. Limits as Linux states them: a name longer than
 * 255 bytes is ERANGE, a value longer than 64 KiB E2BIG (the VFS limit), and a value that does not
 * fit this filesystem's one block ENOSPC (as ext4 without ea_inode). Values longer than
 * {@link XattrCodec#INLINE_MAX} bytes live in a data block of their own, written before the
 * record that points at it joins the transaction.
 *
 * <p>Callers hold the tree lock (exclusive to change) inside a transaction.
 */
final class Xattrs {
    private static final int XATTR_SIZE_MAX = 65536;
    private static final List<String> NAMESPACES = List.of("user.", "trusted.", "security.", "system.");

    private final BlockDevice device;
    private final AlignedBufferPool pool;

    Xattrs(BlockDevice device, AlignedBufferPool pool) {
        this.device = device;
        this.pool = pool;
    }

    /** Checks a name; user.* only on regular files and directories, as Linux allows. */
    static void checkName(byte[] name, InodeRecord r, String call) throws ErrnoException {
        if (name.length == 0) {
            throw ErrnoException.of(Errno.EINVAL.code(), call, "empty attribute name");
        }
        if (name.length > XattrCodec.NAME_MAX) {
            throw ErrnoException.of(Errno.ERANGE.code(), call, "attribute name of " + name.length + " bytes");
        }
        String s = new String(name, StandardCharsets.UTF_8);
        String ns = NAMESPACES.stream().filter(s::startsWith).findFirst().orElse(null);
        if (ns == null || s.length() == ns.length()) {
            throw new ErrnoException.NotSupportedException(Errno.EOPNOTSUPP.code(), call,
                    "attribute name '" + s + "' has no supported namespace (user., trusted., security., system.)");
        }
        if (s.equals("system.posix_acl_access") || s.equals("system.posix_acl_default")) {
            throw new ErrnoException.NotSupportedException(Errno.EOPNOTSUPP.code(), call,
                    "POSIX ACLs are not supported: permissions are the mode bits");
        }
        if (ns.equals("user.") && r != null && !r.isRegular() && !r.isDirectory()) {
            throw ErrnoException.of(Errno.EPERM.code(), call, "user.* attributes only on files and directories");
        }
    }

    /** The attribute {@code name} of {@code ino}, or null. */
    static Xattr find(BTree tree, long ino, byte[] name) throws IOException {
        if (tree == null) {
            return null;
        }
        long hash = DirentCodec.nameHash(name);
        BTreeCursor c = tree.scan(XattrCodec.key(ino, DirentCodec.position(hash, 0)));
        while (c.next()) {
            Xattr x = XattrCodec.decode(c.key(), c.value());
            if (x.ino() != ino || x.position() >>> DirentCodec.COUNTER_BITS != hash) {
                return null;
            }
            if (Arrays.equals(x.name(), name)) {
                return x;
            }
        }
        return null;
    }

    byte[] value(Xattr x) throws IOException {
        if (!x.outOfLine()) {
            return x.inlineValue();
        }
        try (AlignedBuffer buf = pool.allocate(CoherentFs.BLOCK)) {
            device.read(x.valueBlock() * CoherentFs.BLOCK, buf.segment());
            return buf.segment().asSlice(0, x.valueLength()).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    static List<byte[]> names(BTree tree, long ino) throws IOException {
        List<byte[]> out = new ArrayList<>();
        if (tree == null) {
            return out;
        }
        BTreeCursor c = tree.scan(XattrCodec.key(ino, 0));
        while (c.next()) {
            Xattr x = XattrCodec.decode(c.key(), c.value());
            if (x.ino() != ino) {
                break;
            }
            out.add(x.name());
        }
        return out;
    }

    /**
     * Checks a setxattr before anything changes: the value's size, and the flags against an
     * existing attribute in {@code tree} (null when there is no xattr tree yet).
     */
    static void checkSet(BTree tree, long ino, byte[] name, byte[] value, int flags) throws IOException {
        if (value.length > XATTR_SIZE_MAX) {
            throw ErrnoException.of(Errno.E2BIG.code(), "setxattr", "value of " + value.length + " bytes");
        }
        if (value.length > XattrCodec.VALUE_MAX) {
            throw new ErrnoException.NoSpaceException("setxattr",
                    "value of " + value.length + " bytes does not fit one " + XattrCodec.VALUE_MAX + "-byte block");
        }
        Xattr old = find(tree, ino, name);
        if (old != null && (flags & 1) != 0) {
            throw ErrnoException.of(Errno.EEXIST.code(), "setxattr", "attribute exists (XATTR_CREATE)");
        }
        if (old == null && (flags & 2) != 0) {
            throw ErrnoException.of(Errno.ENODATA.code(), "setxattr", "no such attribute (XATTR_REPLACE)");
        }
    }

    /** Sets or replaces {@code name}, after {@link #checkSet} passed. */
    void set(MetaOp op, BTree tree, long ino, byte[] name, byte[] value) throws IOException {
        Xattr old = find(tree, ino, name);
        long position;
        if (old != null) {
            position = old.position();
        } else {
            long hash = DirentCodec.nameHash(name);
            int counter = 0;
            BTreeCursor c = tree.scan(XattrCodec.key(ino, DirentCodec.position(hash, 0)));
            while (c.next()) {
                Xattr x = XattrCodec.decode(c.key(), c.value());
                if (x.ino() != ino || x.position() >>> DirentCodec.COUNTER_BITS != hash
                        || (x.position() & DirentCodec.MAX_COUNTER) != counter) {
                    break;
                }
                counter++;
            }
            position = DirentCodec.position(hash, counter);
        }
        byte[] record;
        if (value.length <= XattrCodec.INLINE_MAX) {
            record = XattrCodec.value(name, value, value.length, 0);
        } else {
            Extent block = op.allocateData(0, 1);
            try (AlignedBuffer buf = pool.allocate(CoherentFs.BLOCK)) {
                buf.segment().fill((byte) 0);
                MemorySegment.copy(MemorySegment.ofArray(value), 0, buf.segment(), 0, value.length);
                device.write(block.start() * CoherentFs.BLOCK, buf.segment());
            }
            record = XattrCodec.value(name, null, value.length, block.start());
        }
        tree.insert(XattrCodec.key(ino, position), record);
        if (old != null && old.outOfLine()) {
            op.freeExtent(old.valueBlock(), 1);
        }
    }

    /** Removes {@code name}; ENODATA when absent. */
    static void remove(MetaOp op, BTree tree, long ino, byte[] name) throws IOException {
        Xattr x = find(tree, ino, name);
        if (x == null) {
            throw ErrnoException.of(Errno.ENODATA.code(), "removexattr", "no such attribute");
        }
        tree.delete(XattrCodec.key(ino, x.position()));
        if (x.outOfLine()) {
            op.freeExtent(x.valueBlock(), 1);
        }
    }

    /** Removes every attribute of an inode being freed. */
    static void removeAll(MetaOp op, BTree tree, long ino) throws IOException {
        if (tree == null) {
            return;
        }
        List<Xattr> all = new ArrayList<>();
        BTreeCursor c = tree.scan(XattrCodec.key(ino, 0));
        while (c.next()) {
            Xattr x = XattrCodec.decode(c.key(), c.value());
            if (x.ino() != ino) {
                break;
            }
            all.add(x);
        }
        for (Xattr x : all) {
            tree.delete(XattrCodec.key(ino, x.position()));
            if (x.outOfLine()) {
                op.freeExtent(x.valueBlock(), 1);
            }
        }
    }
}
