package io.coherentfs.core.btree;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Where a {@link BTree} keeps its nodes: 4 KiB metadata blocks addressed by block number. The tree
 * does no IO itself; the engine implements this on its write-ahead journal and metadata cache
 * ({@link DeviceNodeStore} is a plain implementation over a device, for tests and tools).
 *
 * <h2>Protocol</h2>
 * Modelled on buffer heads and a jbd2 handle: a block is <em>pinned</em> by {@link #read} or
 * {@link #modify} and unpinned by {@link #release}.
 * <ul>
 *   <li><b>Views.</b> The segment returned by {@code read}/{@code modify} is exactly
 *       {@link NodeCodec#BLOCK_SIZE} bytes and stays valid, at the same address and with no one
 *       else changing it, until the matching {@code release}. The store must not evict, reuse or
 *       write into a pinned block's memory. After {@code release} the tree never touches the segment
 *       again.</li>
 *   <li><b>One view per block per operation.</b> Within one tree operation the tree never pins the
 *       same block twice, so {@code release(block)} is unambiguous; it pins at most
 *       {@link #MAX_PINS} blocks at once, and it releases every pin before its public method
 *       returns, normally or by an exception. Concurrent readers (see {@link BTree}) may each pin
 *       the same block with {@code read}; {@code modify} is only called by a writer that excludes
 *       all readers of that tree.</li>
 *   <li><b>Checksums: the tree seals.</b> Before it releases a block it obtained with
 *       {@code modify}, the tree has made it a complete node and {@linkplain NodeCodec#seal sealed}
 *       it (checksum written). So from {@code release} on, the store may log, cache or write the
 *       block as it is, and may verify {@link NodeCodec#isSealed} first. The one exception is an
 *       operation that fails part-way (an IO error or ENOSPC from this store while the tree was
 *       changing nodes): the tree then releases its pins without sealing, the tree's blocks are in
 *       an undefined state, and the caller must abort the enclosing transaction (the journal
 *       discards it) and reopen the tree from its last committed root. A store must therefore never
 *       write a released block whose checksum does not verify.</li>
 *   <li><b>Integrity is the tree's job.</b> The tree {@linkplain NodeCodec#check checks} magic,
 *       checksum and header of every view before reading it; the store returns bytes as they are
 *       (it only throws for IO failures).</li>
 *   <li><b>Locks.</b> The caller of the tree holds the tree's lock (tier 5, the extent-tree lock for
 *       an extent map) for the whole operation; a store shared by many trees must be thread-safe,
 *       and its methods may take its own (tier 5, journal handle) locks but never a lock of tiers
 *       1-4.</li>
 * </ul>
 */
public interface NodeStore {

    /** The most blocks a tree operation pins at once (a parent and two siblings). */
    int MAX_PINS = 3;

    /**
     * Pins {@code block} for reading and returns its content as a read-only view (the last content
     * released after a {@code modify}, else what is on the device).
     */
    MemorySegment read(long block) throws IOException;

    /**
     * Pins {@code block} for change and returns a writable view of its current content. For a
     * journal this is "get write access": the block belongs to the running transaction from now on.
     * For a block returned by {@link #allocate} and not yet released once, the content is
     * undefined (the store need not read it from the device): the tree formats it completely.
     */
    MemorySegment modify(long block) throws IOException;

    /**
     * Unpins {@code block}. If it was pinned by {@code modify} it now holds a sealed node (see the
     * class comment for the failed-operation exception) that the store must persist with the
     * enclosing transaction.
     */
    void release(long block) throws IOException;

    /**
     * Reserves a block that nothing references, for a new node; the tree then calls
     * {@code modify} on it. {@code goal} is a block the new node will be read together with (the
     * node being split, or -1 for none); a store should place the new block near it where it can,
     * and may ignore it.
     *
     * @throws io.coherentfs.blockdev.error.ErrnoException.NoSpaceException when no block is free;
     *     the tree asks for all the blocks an insert needs before it changes any node, so an insert
     *     that fails this way leaves the tree unchanged
     */
    long allocate(long goal) throws IOException;

    /**
     * Returns a block the tree no longer references (after a merge or a root collapse). It is not
     * pinned. The store may hand it out again by {@code allocate}, even within the same operation
     * (a journal must then revoke any logged image of the old use before replay).
     */
    void free(long block) throws IOException;
}
