package io.coherentfs.core.crash;

import io.coherentfs.core.inode.InodeRecord;
import io.coherentfs.core.vfs.Vfs;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;

/**
 * The shadow of the filesystem a crash round works on: the namespace (directories of names ->
 * inodes) and every regular file's content, plus what the round must find after a power cut.
 *
 * <ul>
 *   <li>{@link #snapshots}: the namespace after each completed operation of the round (index 0 is
 *       the state the round started from). Each namespace operation is one transaction and
 *       transactions commit in order, so the recovered namespace must equal one of them, from
 *       {@link #floor} (the last completed sync) on, or {@link #maybe} (the operation that
 *       failed, had it taken effect).</li>
 *   <li>{@link #durable}: files fsynced (or covered by a sync) and not touched since: their size
 *       and content must be exactly as recorded.</li>
 *   <li>{@link #history}: per inode, every write of the round (offset, length, generation) on top of
 *       the content the round started with, and every size the file had: a recovered file may hold
 *       only bytes that are zero, were there at the start, or that some write put at that offset,
 *       and only one of those sizes.</li>
 * </ul>
 *
 * File bytes are a function of (inode, offset, write generation), see {@link #pattern}.
 */
final class Shadow {
    static final int DIR = InodeRecord.S_IFDIR;
    static final int REG = InodeRecord.S_IFREG;
    static final int LNK = InodeRecord.S_IFLNK;

    static final class Node {
        final long ino;
        final int type;
        byte[] content = new byte[0];
        byte[] target;
        final TreeMap<String, Long> children = new TreeMap<>();
        long parent;
        int links;

        Node(long ino, int type) {
            this.ino = ino;
            this.type = type;
        }

        boolean isDir() {
            return type == DIR;
        }
    }

    static final class History {
        final byte[] baseline;
        final List<long[]> writes = new ArrayList<>();
        final Set<Long> sizes = new HashSet<>();

        History(byte[] baseline) {
            this.baseline = baseline;
            sizes.add((long) baseline.length);
        }
    }

    final Map<Long, Node> nodes = new HashMap<>();
    final Map<Long, History> history = new HashMap<>();
    final Map<Long, byte[]> durable = new HashMap<>();
    final List<TreeMap<String, String>> snapshots = new ArrayList<>();
    int floor;
    Predicate<TreeMap<String, String>> maybe;
    String maybeWhat;
    final List<String> log = new ArrayList<>();

    /** An empty filesystem: the root directory alone. */
    Shadow() {
        Node root = new Node(Vfs.ROOT, DIR);
        root.parent = Vfs.ROOT;
        nodes.put(Vfs.ROOT, root);
    }

    /** Starts a round from the current state, which is durable (it was recovered and replayed). */
    void beginRound() {
        history.clear();
        durable.clear();
        snapshots.clear();
        log.clear();
        maybe = null;
        maybeWhat = null;
        for (Node n : nodes.values()) {
            if (n.type == REG) {
                history.put(n.ino, new History(n.content.clone()));
                durable.put(n.ino, n.content.clone());
            }
        }
        snapshots.add(namespace());
        floor = 0;
    }

    /** Records that an operation completed. */
    void completed() {
        snapshots.add(namespace());
    }

    /** A sync() completed: everything so far is durable. */
    void synced() {
        floor = snapshots.size() - 1;
        durable.clear();
        for (Node n : nodes.values()) {
            if (n.type == REG) {
                durable.put(n.ino, n.content.clone());
            }
        }
    }

    // ---- queries ---------------------------------------------------------------------------------

    Node node(long ino) {
        return nodes.get(ino);
    }

    List<Node> dirs() {
        List<Node> out = new ArrayList<>();
        for (Node n : nodes.values()) {
            if (n.isDir()) {
                out.add(n);
            }
        }
        out.sort((a, b) -> Long.compare(a.ino, b.ino));
        return out;
    }

    List<Node> files() {
        List<Node> out = new ArrayList<>();
        for (Node n : nodes.values()) {
            if (n.type == REG) {
                out.add(n);
            }
        }
        out.sort((a, b) -> Long.compare(a.ino, b.ino));
        return out;
    }

    record Entry(long dir, String name, Node node) {}

    /** Every (directory, name) in a stable order. */
    List<Entry> entries() {
        List<Entry> out = new ArrayList<>();
        for (Node d : dirs()) {
            for (Map.Entry<String, Long> e : d.children.entrySet()) {
                out.add(new Entry(d.ino, e.getKey(), nodes.get(e.getValue())));
            }
        }
        return out;
    }

    long totalBytes() {
        long sum = 0;
        for (Node n : nodes.values()) {
            sum += n.content.length;
        }
        return sum;
    }

    /** True when {@code dir} is {@code ancestor} or lies below it. */
    boolean isAncestor(long ancestor, long dir) {
        long d = dir;
        for (int i = 0; i < 10_000; i++) {
            if (d == ancestor) {
                return true;
            }
            if (d == Vfs.ROOT) {
                return false;
            }
            d = nodes.get(d).parent;
        }
        throw new IllegalStateException("model has a directory cycle");
    }

    // ---- changes ---------------------------------------------------------------------------------

    Node add(long dir, String name, long ino, int type, byte[] target) {
        Node n = new Node(ino, type);
        n.target = target;
        n.parent = dir;
        n.links = 1;
        nodes.put(ino, n);
        nodes.get(dir).children.put(name, ino);
        if (type == REG) {
            history.put(ino, new History(new byte[0]));
        }
        return n;
    }

    void link(long ino, long dir, String name) {
        nodes.get(ino).links++;
        nodes.get(dir).children.put(name, ino);
    }

    /** Removes a name; the inode goes when it was its last (a directory always goes). */
    void removeName(long dir, String name) {
        long ino = nodes.get(dir).children.remove(name);
        Node n = nodes.get(ino);
        n.links--;
        if (n.isDir() || n.links <= 0) {
            nodes.remove(ino);
            durable.remove(ino);
        }
    }

    /** rename(2) without flags or with NOREPLACE, already checked valid. */
    void rename(long fromDir, String from, long toDir, String to) {
        long src = nodes.get(fromDir).children.get(from);
        Long dst = nodes.get(toDir).children.get(to);
        if (dst != null && dst == src) {
            return;
        }
        if (dst != null) {
            removeName(toDir, to);
        }
        nodes.get(fromDir).children.remove(from);
        nodes.get(toDir).children.put(to, src);
        Node moved = nodes.get(src);
        if (moved.isDir()) {
            moved.parent = toDir;
        }
    }

    void exchange(long dirA, String a, long dirB, String b) {
        long ia = nodes.get(dirA).children.get(a);
        long ib = nodes.get(dirB).children.get(b);
        nodes.get(dirA).children.put(a, ib);
        nodes.get(dirB).children.put(b, ia);
        if (nodes.get(ia).isDir()) {
            nodes.get(ia).parent = dirB;
        }
        if (nodes.get(ib).isDir()) {
            nodes.get(ib).parent = dirA;
        }
    }

    /** Before a write is issued: it may land, in part or whole, from now on. */
    void writing(long ino, long offset, int length, long generation) {
        History h = history.get(ino);
        h.writes.add(new long[] {offset, length, generation});
        long size = nodes.get(ino).content.length;
        long end = offset + length;
        h.sizes.add(Math.max(size, end));
        // A write runs in steps, one transaction each, that end at the end of an extent: a cut
        // between them leaves the size at a block boundary inside the write (as ext4 may).
        for (long b = (Math.max(size, offset) / 4096 + 1) * 4096; b < end; b += 4096) {
            h.sizes.add(b);
        }
    }

    /** The write completed. */
    void wrote(long ino, long offset, byte[] data) {
        Node n = nodes.get(ino);
        int end = (int) (offset + data.length);
        if (end > n.content.length) {
            n.content = Arrays.copyOf(n.content, end);
        }
        System.arraycopy(data, 0, n.content, (int) offset, data.length);
        durable.remove(ino);
    }

    /** Before a truncate is issued. */
    void truncating(long ino, long size) {
        history.get(ino).sizes.add(size);
    }

    void truncated(long ino, long size) {
        Node n = nodes.get(ino);
        n.content = Arrays.copyOf(n.content, (int) size);
        durable.remove(ino);
    }

    void fsynced(long ino) {
        durable.put(ino, nodes.get(ino).content.clone());
    }

    // ---- the namespace as data -------------------------------------------------------------------

    /** "dir/name" -> "ino type [target]" for every entry. */
    TreeMap<String, String> namespace() {
        TreeMap<String, String> ns = new TreeMap<>();
        for (Entry e : entries()) {
            ns.put(key(e.dir(), e.name()), describe(e.node().ino, e.node().type, e.node().target));
        }
        return ns;
    }

    static String key(long dir, String name) {
        return dir + "/" + name;
    }

    static String describe(long ino, int type, byte[] target) {
        return switch (type) {
            case DIR -> ino + " dir";
            case REG -> ino + " file";
            case LNK -> ino + " symlink " + new String(target, StandardCharsets.ISO_8859_1);
            default -> ino + " type " + Integer.toOctalString(type);
        };
    }

    /** What a created entry looks like when its inode number is not known (the create failed). */
    static String describeUnknownIno(int type, byte[] target) {
        return describe(0, type, target).substring(1);
    }

    // ---- content ---------------------------------------------------------------------------------

    /** The byte write {@code generation} puts at {@code offset} of inode {@code ino}. */
    static byte pattern(long ino, long offset, long generation) {
        long x = ino * 0x9E3779B97F4A7C15L ^ generation * 0xC2B2AE3D27D4EB4FL ^ (offset >>> 3) * 0x165667B19E3779F9L;
        x ^= x >>> 33;
        x *= 0xFF51AFD7ED558CCDL;
        x ^= x >>> 33;
        x *= 0xC4CEB9FE1A85EC53L;
        x ^= x >>> 33;
        return (byte) (x >>> ((offset & 7) * 8));
    }

    static byte[] data(long ino, long offset, int length, long generation) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = pattern(ino, offset + i, generation);
        }
        return b;
    }

    /**
     * The first offset where {@code got} differs from {@code want} (inode {@code ino}'s expected
     * content), or -1 when they are equal.
     */
    int firstMismatch(byte[] want, byte[] got) {
        return Arrays.mismatch(want, got);
    }

    /**
     * The first offset of {@code content} (inode {@code ino}) holding a byte that is not zero,
     * not the round's starting content, and not written there by a write of the round; -1 if none.
     */
    int firstForeignByte(long ino, byte[] content) {
        History h = history.get(ino);
        List<long[]> writes = new ArrayList<>();
        if (h != null) {
            writes.addAll(h.writes);
        }
        boolean[] ok = new boolean[content.length];
        for (int i = 0; i < content.length; i++) {
            ok[i] = content[i] == 0 || (h != null && i < h.baseline.length && content[i] == h.baseline[i]);
        }
        {
            for (long[] w : writes) {
                long end = Math.min(w[0] + w[1], content.length);
                for (long o = w[0]; o < end; o++) {
                    if (!ok[(int) o] && content[(int) o] == pattern(ino, o, w[2])) {
                        ok[(int) o] = true;
                    }
                }
            }
        }
        for (int i = 0; i < content.length; i++) {
            if (!ok[i]) {
                return i;
            }
        }
        return -1;
    }
}
