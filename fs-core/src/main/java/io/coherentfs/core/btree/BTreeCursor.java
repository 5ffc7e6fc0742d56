package io.coherentfs.core.btree;

import java.io.IOException;

/**
 * Walks a {@link BTree}'s entries in key order (ascending from {@link BTree#scan}, descending from
 * {@link BTree#scanDescending}).
 *
 * <pre>{@code
 * BTreeCursor c = tree.scan(from);
 * while (c.next()) {
 *     use(c.key(), c.value());
 * }
 * }</pre>
 *
 * <p>A cursor pins nothing and needs no closing. It remembers the last key it returned and
 * re-descends from the root once per leaf, so the tree may change between steps (the caller may
 * even drop its lock between them): the cursor then still returns keys strictly in order, never one
 * twice, and every key present for the whole walk; a key inserted or deleted meanwhile may or may
 * not be seen. Entries of the current leaf are copied when the cursor enters it, so a value
 * replaced after that shows its old content. Not thread-safe.
 */
public interface BTreeCursor {

    /** Moves to the next entry; false when there is none (the cursor is then exhausted). */
    boolean next() throws IOException;

    /** The current entry's key (a copy the caller owns). */
    byte[] key();

    /** The current entry's value (a copy the caller owns). */
    byte[] value();
}
