package io.coherentfs.core;

import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeSpec;
import io.coherentfs.core.btree.NodeStore;
import io.coherentfs.core.extent.ExtentMap;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.format.TreeShapes;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import java.io.IOException;

/**
 * The filesystem-wide trees (docs/STORAGE.md): their shapes, their ids, and where their roots
 * live. Trees are opened per operation over that operation's store ({@link MetaOp} to change,
 * a reader to look); a root that moves is written back to the superblock or inode in the same
 * transaction.
 */
final class Trees {
    static final BTreeSpec INODES = TreeShapes.INODES;
    static final BTreeSpec DIRENTS = TreeShapes.DIRENTS;
    static final BTreeSpec ORPHANS = TreeShapes.ORPHANS;
    static final BTreeSpec XATTRS = TreeShapes.XATTRS;
    static final long INODE_TREE = TreeShapes.INODE_TREE;
    static final long DIRENT_TREE = TreeShapes.DIRENT_TREE;
    static final long XATTR_TREE = TreeShapes.XATTR_TREE;
    static final long ORPHAN_TREE = TreeShapes.ORPHAN_TREE;

    private final MetaStore meta;

    Trees(MetaStore meta) {
        this.meta = meta;
    }

    static byte[] inoKey(long ino) {
        return TreeShapes.inoKey(ino);
    }

    static long inoOf(byte[] key) {
        return TreeShapes.inoOf(key);
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
    static ExtentMap extents(NodeStore store, long ino, long root, boolean create, BTree.RootListener rootMoved)
            throws IOException {
        if (root == 0) {
            if (!create) {
                return null;
            }
            BTree t = BTree.create(store, ExtentMap.SPEC, ino, -1, rootMoved);
            rootMoved.rootChanged(t.root());
            return new ExtentMap(t);
        }
        return new ExtentMap(BTree.open(store, ExtentMap.SPEC, ino, root, rootMoved));
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
