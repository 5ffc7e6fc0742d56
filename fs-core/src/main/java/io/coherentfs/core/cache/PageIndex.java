package io.coherentfs.core.cache;

import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Page index -> folio for one mapping: a radix tree of 64-slot nodes (the kernel's xarray, in
 * miniature). A lookup is one array load per level — three levels cover 1 GiB of a file — with no
 * lock and no allocation, which is what a cached 4 KiB read needs.
 *
 * <h2>Concurrency design</h2>
 * Every slot is an {@link AtomicReferenceArray} element and every change is one CAS:
 * <ul>
 *   <li>The tree grows upward: a new root whose slot 0 is the old root replaces it by CAS on
 *       {@link #root}. Readers read the root once; a root too short for their index means the
 *       index is absent, which was true when they read it.
 *   <li>Inner nodes are installed by CAS on a null slot (the loser discards its node) and are
 *       never removed, so a reader holding a node reference is never on a detached path.
 *   <li>A leaf slot goes null -> folio ({@link #putIfAbsent}) and folio -> null ({@link #remove}),
 *       each by CAS, so at most one folio per index is ever present.
 * </ul>
 * Traversals ({@link #ceiling}, {@link #forEach}) are weakly consistent: they see each slot as
 * of the moment they read it, like {@code ConcurrentSkipListMap}'s views.
 */
final class PageIndex {
    private static final int BITS = 6;
    private static final int FAN = 1 << BITS;
    private static final int MASK = FAN - 1;

    private static final class Node {
        /** The bit position of this node's slot number in an index: 0 for leaves. */
        final int shift;
        final AtomicReferenceArray<Object> slots = new AtomicReferenceArray<>(FAN);

        Node(int shift) {
            this.shift = shift;
        }

        /** One past the largest index this node (as the root) can hold; MAX_VALUE when it covers all. */
        long span() {
            return shift + BITS >= 63 ? Long.MAX_VALUE : 1L << (shift + BITS);
        }
    }

    /** Visits folios in index order; returns false to stop. */
    @FunctionalInterface
    interface Visitor {
        boolean visit(long index, Folio folio);
    }

    private final AtomicReference<Node> root = new AtomicReference<>(new Node(0));

    Folio get(long index) {
        Node n = root.get();
        if (index >= n.span()) {
            return null;
        }
        while (true) {
            Object o = n.slots.get((int) (index >>> n.shift) & MASK);
            if (n.shift == 0 || o == null) {
                return (Folio) o;
            }
            n = (Node) o;
        }
    }

    /** Inserts {@code f} at {@code index} unless a folio is there; returns that folio, or null if inserted. */
    Folio putIfAbsent(long index, Folio f) {
        Node n = rootCovering(index);
        while (n.shift > 0) {
            int slot = (int) (index >>> n.shift) & MASK;
            Object o = n.slots.get(slot);
            if (o == null) {
                Node child = new Node(n.shift - BITS);
                o = n.slots.compareAndSet(slot, null, child) ? child : n.slots.get(slot);
            }
            n = (Node) o;
        }
        int slot = (int) index & MASK;
        while (true) {
            if (n.slots.compareAndSet(slot, null, f)) {
                return null;
            }
            Object there = n.slots.get(slot);
            if (there != null) {
                return (Folio) there;
            }
        }
    }

    /** Removes {@code f} from {@code index} if it is the folio there; returns whether it was. */
    boolean remove(long index, Folio f) {
        Node n = root.get();
        if (index >= n.span()) {
            return false;
        }
        while (n.shift > 0) {
            Object o = n.slots.get((int) (index >>> n.shift) & MASK);
            if (o == null) {
                return false;
            }
            n = (Node) o;
        }
        return n.slots.compareAndSet((int) index & MASK, f, null);
    }

    /** The smallest index {@code >= from} holding a folio, or -1. */
    long ceiling(long from) {
        long[] found = {-1};
        forEach(from, Long.MAX_VALUE, (i, f) -> {
            found[0] = i;
            return false;
        });
        return found[0];
    }

    /** Visits the folios with index in {@code [from, to)} in order until the visitor returns false. */
    void forEach(long from, long to, Visitor visitor) {
        Node r = root.get();
        long start = Math.max(0, from);
        long end = Math.min(to, r.span());
        if (start < end) {
            walk(r, 0, start, end, visitor);
        }
    }

    /** Visits {@code [from, to)} under node {@code n}, whose first index is {@code base}; false once stopped. */
    private static boolean walk(Node n, long base, long from, long to, Visitor visitor) {
        long step = 1L << n.shift;
        int first = (int) (Math.max(0, from - base) >>> n.shift);
        for (int s = first; s < FAN; s++) {
            long slotBase = base + s * step;
            if (slotBase >= to) {
                return true;
            }
            Object o = n.slots.get(s);
            if (o == null) {
                continue;
            }
            if (n.shift == 0) {
                if (slotBase >= from && !visitor.visit(slotBase, (Folio) o)) {
                    return false;
                }
            } else if (!walk((Node) o, slotBase, from, to, visitor)) {
                return false;
            }
        }
        return true;
    }

    /** The root, grown until it covers {@code index}. */
    private Node rootCovering(long index) {
        if (index < 0) {
            throw new IllegalArgumentException("negative page index " + index);
        }
        while (true) {
            Node r = root.get();
            if (index < r.span()) {
                return r;
            }
            Node taller = new Node(r.shift + BITS);
            taller.slots.set(0, r);
            root.compareAndSet(r, taller);
        }
    }
}
