package io.coherentfs.core;

import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeSpec;
import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.dir.DirentCodec;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import io.coherentfs.core.xattr.XattrCodec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.function.LongFunction;

/**
 * The filesystem-wide trees (docs/STORAGE.md): their shapes, their ids, and where their roots
 * live. Trees are opened per operation over that operation's store ({@link MetaOp} to change,
 * a reader to look); a root that moves is written back to the superblock or inode in the same
 * transaction.
 */
final class Trees {
    static final BTreeSpec INODES = BTreeSpec.of(8, InodeRecord.SIZE);
    static final BTreeSpec DIRENTS = BTreeSpec.of(DirentCodec.KEY_SIZE, DirentCodec.VALUE_SIZE);
    static final BTreeSpec ORPHANS = BTreeSpec.of(8, 0);
    static final BTreeSpec XATTRS = BTreeSpec.of(XattrCodec.KEY_SIZE, XattrCodec.VALUE_SIZE);

    // Tree ids of the filesystem-wide trees; an extent map's id is its inode number.
    static final long INODE_TREE = -16;
    static final long DIRENT_TREE = -15;
    static final long XATTR_TREE = -14;
    static final long ORPHAN_TREE = -13;

    private final MetaStore meta;

    Trees(MetaStore meta) {
        this.meta = meta;
    }

    static byte[] inoKey(long ino) {
        return ByteBuffer.allocate(8).putLong(ino).array();
    }

    static long inoOf(byte[] key) {
        return ByteBuffer.wrap(key).getLong();
    }

    BTree inodes(NodeStore store, MetaOp op) throws IOException {
        return BTree.open(store, INODES, INODE_TREE, meta.superblock().inodeTreeRoot(),
                root -> moveRoot(op, b -> b.inodeTreeRoot = root));
    }

    BTree dirents(NodeStore store, MetaOp op) throws IOException {
        return BTree.open(store, DIRENTS, DIRENT_TREE, meta.superblock().direntTreeRoot(),
                root -> moveRoot(op, b -> b.direntTreeRoot = root));
    }

    BTree orphans(NodeStore store, MetaOp op) throws IOException {
        return BTree.open(store, ORPHANS, ORPHAN_TREE, meta.superblock().orphanTreeRoot(),
                root -> moveRoot(op, b -> b.orphanTreeRoot = root));
    }

    /** The xattr tree, created on first use when {@code create}; null when there is none yet. */
    BTree xattrs(NodeStore store, MetaOp op, boolean create) throws IOException {
        long root = meta.superblock().xattrTreeRoot();
        if (root == 0) {
            if (!create) {
                return null;
            }
            BTree t = BTree.create(store, XATTRS, XATTR_TREE, -1, r -> moveRoot(op, b -> b.xattrTreeRoot = r));
            moveRoot(op, b -> b.xattrTreeRoot = t.root());
            return t;
        }
        return BTree.open(store, XATTRS, XATTR_TREE, root, r -> moveRoot(op, b -> b.xattrTreeRoot = r));
    }

    /**
     * The extent map of an inode whose record says its root is {@code root} (0: none yet, and
     * {@code create} makes one). {@code rootMoved} records a new root in the inode.
     */
    static ExtentMap extents(NodeStore store, long ino, long root, boolean create, LongFunction<Void> rootMoved)
            throws IOException {
        if (root == 0) {
            if (!create) {
                return null;
            }
            BTree t = BTree.create(store, ExtentMap.SPEC, ino, -1, r -> rootMoved.apply(r));
            rootMoved.apply(t.root());
            return new ExtentMap(t);
        }
        return new ExtentMap(BTree.open(store, ExtentMap.SPEC, ino, root, r -> rootMoved.apply(r)));
    }

    /** Creates the filesystem-wide trees (mkfs); their roots go into the superblock. */
    void createAll(MetaOp op) throws IOException {
        BTree i = BTree.create(op, INODES, INODE_TREE, -1, root -> moveRoot(op, b -> b.inodeTreeRoot = root));
        BTree d = BTree.create(op, DIRENTS, DIRENT_TREE, -1, root -> moveRoot(op, b -> b.direntTreeRoot = root));
        BTree o = BTree.create(op, ORPHANS, ORPHAN_TREE, -1, root -> moveRoot(op, b -> b.orphanTreeRoot = root));
        moveRoot(op, b -> {
            b.inodeTreeRoot = i.root();
            b.direntTreeRoot = d.root();
            b.orphanTreeRoot = o.root();
        });
    }

    private interface SuperblockChange {
        void apply(Superblock.Builder b);
    }

    private void moveRoot(MetaOp op, SuperblockChange change) {
        if (op == null) {
            throw new IllegalStateException("a read-only tree operation moved a root");
        }
        meta.update(op, s -> {
            Superblock.Builder b = s.toBuilder();
            change.apply(b);
            return b.build();
        });
    }
}
