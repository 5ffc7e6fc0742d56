package io.coherentfs.core.fsck;

import io.coherentfs.core.format.TreeShapes;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.btree.BTree;
import io.coherentfs.core.btree.BTreeSpec;
import io.coherentfs.core.format.Superblock;
import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.meta.MetaOp;
import io.coherentfs.core.meta.MetaStore;
import java.io.IOException;
import java.util.function.BiConsumer;

/**
 * What a transactional repair works with: the mounted {@link MetaStore} and the filesystem-wide
 * trees opened over one {@link MetaOp}, with root moves written to the superblock in the same
 * transaction, exactly as the engine does it. Fixes re-read what they change (the state may have
 * moved on since the check, e.g. through an earlier fix), so two fixes of one inode compose.
 */
final class RepairContext {
    private final MetaStore meta;

    RepairContext(MetaStore meta) {
        this.meta = meta;
    }

    MetaStore meta() {
        return meta;
    }

    BTree inodes(MetaOp op) throws IOException {
        return open(op, TreeShapes.INODES, TreeShapes.INODE_TREE, meta.superblock().inodeTreeRoot(),
                (b, root) -> b.inodeTreeRoot = root);
    }

    BTree dirents(MetaOp op) throws IOException {
        return open(op, TreeShapes.DIRENTS, TreeShapes.DIRENT_TREE, meta.superblock().direntTreeRoot(),
                (b, root) -> b.direntTreeRoot = root);
    }

    BTree orphans(MetaOp op) throws IOException {
        return open(op, TreeShapes.ORPHANS, TreeShapes.ORPHAN_TREE, meta.superblock().orphanTreeRoot(),
                (b, root) -> b.orphanTreeRoot = root);
    }

    private BTree open(MetaOp op, BTreeSpec spec, long treeId, long root, BiConsumer<Superblock.Builder, Long> moveRoot)
            throws IOException {
        return BTree.open(op, spec, treeId, root, newRoot -> meta.update(op, s -> {
            Superblock.Builder b = s.toBuilder();
            moveRoot.accept(b, newRoot);
            return b.build();
        }));
    }

    /** The record of {@code ino}; ENOENT when it is gone. */
    static InodeRecord load(BTree inodes, long ino) throws IOException {
        byte[] v = inodes.get(TreeShapes.inoKey(ino));
        if (v == null) {
            throw new ErrnoException(Errno.ENOENT, "fsck", "inode " + ino + " disappeared before its repair");
        }
        return InodeRecord.decode(v, ino);
    }

    static void save(BTree inodes, long ino, InodeRecord r) throws IOException {
        inodes.insert(TreeShapes.inoKey(ino), r.encode());
    }

    /** Loads, changes and stores one inode record in {@code op}. */
    void changeInode(MetaOp op, long ino, java.util.function.Consumer<InodeRecord.Builder> change) throws IOException {
        BTree inodes = inodes(op);
        InodeRecord.Builder b = load(inodes, ino).toBuilder();
        change.accept(b);
        save(inodes, ino, b.build());
    }
}
