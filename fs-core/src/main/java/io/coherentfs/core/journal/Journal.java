package io.coherentfs.core.journal;

import static io.coherentfs.core.journal.JournalFormat.BLOCK_SIZE;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.BlockDevice;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.journal.JournalFormat.Superblock;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiConsumer;
import java.util.zip.CRC32C;

/**
 * The write-ahead metadata journal (after jbd2): atomic, batched changes to 4 KiB metadata blocks
 * held in a {@link MetaCache}, logged to a fixed region of the device before they reach their home
 * locations, and replayed at open after a crash. The on-disk layout is in {@link JournalFormat}.
 *
 * <h2>Life of a change</h2>
 * <ol>
 *   <li>{@link #begin}{@code (maxBlocks)} returns a {@link Handle} on the <em>running</em>
 *       transaction, reserving {@code maxBlocks} credits of log space; {@link Handle#getWrite} joins
 *       a block to the transaction; the caller changes the block; {@link Handle#close()}. Many
 *       handles, from many threads, share one running transaction.</li>
 *   <li><b>Commit</b> (one background thread, "journal-commit", like kjournald2): on
 *       {@link #commit()} (fsync), when the transaction is {@link JournalOptions#commitInterval} old,
 *       when its credits reach {@link #maxTransactionBlocks()}, or when {@code begin} needs log
 *       space. The transaction is LOCKED (new handles wait) until its open handles close, then
 *       becomes COMMITTING and new handles start the next running transaction at once. The commit
 *       copies each block's image into a log buffer — from a <em>frozen</em> copy if a handle of the
 *       next transaction has meanwhile asked to change it (copy-on-write, see below) — writes
 *       descriptors + images to the log, <b>flushes</b>, writes the commit block, <b>flushes</b>.
 *       The first flush also makes durable every data block whose write completed before the
 *       commit began: that is the ordered-data guarantee (callers complete data writes before the
 *       metadata pointing at them joins a transaction).</li>
 *   <li><b>Checkpoint</b> (same thread): committed transactions are written home lazily — when more
 *       than {@link JournalOptions#checkpointPercent} of the log is used, when {@code begin} waits
 *       for space, on {@link JournalOptions#checkpointInterval}, on {@link #checkpoint()} and
 *       {@link #close()}. It writes, for every block of every committed transaction, the newest
 *       <em>committed</em> image (taken from the transactions' log buffers, never the live buffer,
 *       which may hold uncommitted changes of the running transaction), flushes, then advances the
 *       superblock's tail past them, flushes, and only then frees their log space and runs the
 *       {@link #onCheckpointed} callbacks.</li>
 * </ol>
 *
 * <h2>Frozen images (copy-on-write)</h2>
 * A block joined to the committing transaction whose image has not been copied into the log
 * buffer yet is marked {@code transaction == committing}. If a handle of the running transaction
 * asks for write access to it, {@code getWrite} first copies the live bytes into a frozen buffer
 * (under the journal lock, while nobody may write them: the committing transaction's handles have
 * all closed and the running one has no access yet); the commit logs the frozen copy and frees it.
 *
 * <h2>Log space and credits (no deadlock)</h2>
 * {@code used} counts log slots of committed-not-checkpointed transactions and of the committing
 * one. {@code begin(m)} waits until {@code used + logBlocksFor(running credits + m) <= logSize}
 * and the running transaction's credits stay within {@link #maxTransactionBlocks()}; while it
 * waits it asks the commit thread to commit the running transaction and to checkpoint. A handle
 * never waits for log space after {@code begin}: its credits are already reserved, so every open
 * handle can finish, the running transaction can then commit into space reserved for it, and a
 * checkpoint frees everything committed. {@code maxTransactionBlocks} is capped so that one full
 * transaction uses at most half the log.
 *
 * <h2>Deferred block reuse instead of revoke records</h2>
 * jbd2 writes revoke records so that replay does not overwrite a freed-and-reused metadata block
 * with a stale logged image. coherentfs instead has the allocator keep blocks freed in transaction
 * N unusable until {@link #onCheckpointed}{@code (N, ...)} fires: by then no transaction that
 * logged the block can be replayed (the tail has moved past it), so reuse — even as data written
 * directly — is safe. This costs a little allocation latency and no log format.
 *
 * <h2>Errors</h2>
 * Device errors during commit or checkpoint <b>abort</b> the journal (as jbd2 does): the commit
 * thread stops, and every later {@code begin}, {@code getWrite}, {@code commit} and
 * {@code checkpoint} throws {@link JournalAbortedException} (an {@link ErrnoException} with the
 * device's errno, EIO for media errors, and the device's exception as cause). The filesystem must
 * then go read-only; the log on disk is still consistent and is replayed at the next open. A handle
 * cannot be rolled back: a caller whose change fails half-way must {@link #abort} the journal.
 *
 * <h2>Locks (tier 5 of DESIGN.md section 4, the innermost)</h2>
 * One {@link ReentrantLock} {@code lock} with one condition {@code changed} guards all
 * bookkeeping: the running/committing/checkpoint transactions, every {@link MetaBuffer}'s journal
 * fields, the log positions, requests and callbacks. Order: {@code lock} may be held while taking
 * the {@link MetaCache} lock (a leaf), never the reverse. No device IO is done while holding
 * {@code lock}; the commit thread takes it only to switch states and to copy one 4 KiB image at a
 * time. Callers may hold their own tier-5 structure lock (extent tree, allocator) across
 * {@code getWrite}; they must hold <em>no lock of tiers 1-5</em> that a handle holder might need
 * when they call {@link #begin} (it may wait for open handles to close and for a checkpoint),
 * {@link #commit()} or {@link #checkpoint()}. {@link #onCheckpointed} callbacks run on the commit
 * thread with no journal lock held; they must not wait for the journal.
 */
public final class Journal implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Journal.class.getName());

    /** The smallest region accepted (superblock + log). */
    public static final long MIN_REGION_BLOCKS = 32;

    private final BlockDevice device;
    private final MetaCache cache;
    private final AlignedBufferPool pool;
    private final JournalOptions options;
    private final long regionStart;
    private final long logBase;
    private final long logSize;
    private final int maxTransactionBlocks;
    private final ReplayReport replayReport;
    private final Thread commitThread;
    private final ThreadLocal<Handle> currentHandle = new ThreadLocal<>();

    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled on every state change anyone may wait for. */
    private final Condition changed = lock.newCondition();

    // ---- guarded by lock ----
    private Superblock superblock;
    private long head;
    private long used;
    private long nextSequence;
    private Transaction running;
    private Transaction committing;
    private final ArrayDeque<Transaction> checkpointList = new ArrayDeque<>();
    private long lastCommitted;
    private long lastCheckpointed;
    private long commitRequest;
    private long checkpointRequest;
    private int spaceWaiters;
    private Throwable abortCause;
    private boolean closing;
    private boolean shutdown;
    private final TreeMap<Long, List<Runnable>> callbacks = new TreeMap<>();

    private final AtomicLong commits = new AtomicLong();
    private final AtomicLong checkpoints = new AtomicLong();
    private final AtomicLong frozenCopies = new AtomicLong();
    private volatile boolean aborted;
    /** Test hook: named interleaving points ("commit.locked", ...); a no-op in production. */
    private volatile BiConsumer<String, Long> racePoint = (name, seq) -> { };

    private Journal(BlockDevice device, MetaCache cache, JournalOptions options, Superblock sb, ReplayReport report) {
        this.device = device;
        this.cache = cache;
        this.pool = cache.pool();
        this.options = options;
        this.regionStart = sb.regionStart();
        this.logBase = sb.regionStart() + 1;
        this.logSize = sb.regionLength() - 1;
        this.superblock = sb;
        this.head = sb.tail();
        this.nextSequence = sb.firstSequence();
        this.lastCommitted = nextSequence - 1;
        this.lastCheckpointed = nextSequence - 1;
        this.replayReport = report;
        int limit = options.maxTransactionBlocks() == 0 ? (int) Math.min(1024, logSize / 4) : options.maxTransactionBlocks();
        limit = (int) Math.max(1, Math.min(limit, pool.maxBufferSize() / BLOCK_SIZE - 16));
        while (limit > 1 && JournalFormat.logBlocksFor(limit) > logSize / 2) {
            limit--;
        }
        this.maxTransactionBlocks = limit;
        this.commitThread = Thread.ofPlatform().daemon().name("journal-commit@" + regionStart).unstarted(this::runCommitThread);
        commitThread.start();
    }

    // ---- format / open ------------------------------------------------------------------------

    /**
     * Initializes a journal in device blocks {@code [start, start + length)}: an empty log with a
     * new random journal id (so log blocks of any earlier format are never taken for live ones).
     * Flushes before returning.
     */
    public static void format(BlockDevice device, long start, long length) throws IOException {
        checkRegion(device, start, length);
        long id;
        SecureRandom random = new SecureRandom();
        do {
            id = random.nextLong();
        } while (id == 0);
        Superblock sb = new Superblock(id, start, length, 0, 1, System.currentTimeMillis());
        try (AlignedBufferPool pool = new AlignedBufferPool(BLOCK_SIZE); AlignedBuffer b = pool.allocate(BLOCK_SIZE)) {
            sb.encode(b.segment());
            device.write(start * BLOCK_SIZE, b.segment());
        }
        device.flush();
    }

    /**
     * Opens the journal in {@code [start, start + length)}, replaying it: every complete transaction
     * from the tail on is written home (in sequence order), stopping at the first missing, torn or
     * corrupt one, which is discarded with everything after it; then the device is flushed and the
     * log reset to empty. {@link #replayReport()} says what was done. Blocks replayed are dropped
     * from {@code cache} if it holds them unpinned; pass a cache that nobody uses yet.
     *
     * <p>The device must be writable (replay writes home blocks and resets the superblock even
     * when there is nothing to replay). Call before anything uses the region's home blocks.
     *
     * @throws JournalCorruptException if the journal superblock is damaged or describes another
     *     region (the message names the block)
     * @throws IOException             the device's exception if an IO fails
     */
    public static Journal open(BlockDevice device, long start, long length, MetaCache cache, JournalOptions options)
            throws IOException {
        checkRegion(device, start, length);
        AlignedBufferPool pool = cache.pool();
        Superblock sb;
        try (AlignedBuffer b = pool.allocate(BLOCK_SIZE)) {
            device.read(start * BLOCK_SIZE, b.segment());
            sb = Superblock.decode(b.segment(), start);
        }
        if (sb.regionStart() != start || sb.regionLength() != length) {
            throw new JournalCorruptException(start, "journal superblock describes region [" + sb.regionStart() + ", +"
                    + sb.regionLength() + "), but the journal was opened at [" + start + ", +" + length + ")");
        }
        if (sb.tail() < 0 || sb.tail() >= length - 1) {
            throw new JournalCorruptException(start, "journal superblock tail " + sb.tail() + " is outside the log");
        }
        long deviceBlocks = device.size() / BLOCK_SIZE;
        if (device.isReadOnly()) {
            // A read-only device can be used only when there is nothing to replay (as ext4's
            // "write access unavailable, cannot proceed"); nothing is written then.
            LogScanner.Result r = LogScanner.scan(device, pool, sb, tx -> {
                throw new ErrnoException.ReadOnlyException("journal replay", "the journal holds committed "
                        + "transactions to replay, but " + device.geometry().path() + " is open read-only");
            });
            ReplayReport report = new ReplayReport(0, 0, sb.firstSequence(), r.lastSequence(), r.lastSequence() + 2,
                    r.stopReason());
            return new Journal(device, cache, options, sb.withTail(r.end(), r.lastSequence() + 2), report);
        }
        LogScanner.Result r = LogScanner.scan(device, pool, sb, tx -> {
            for (int i = 0; i < tx.homes().length; i++) {
                long home = tx.homes()[i];
                if (home < 0 || home >= deviceBlocks || (home >= start && home < start + length)) {
                    throw new JournalCorruptException(start, "transaction " + tx.sequence()
                            + " logs home block " + home + ", which is outside the device or inside the journal");
                }
                device.write(home * BLOCK_SIZE, tx.image(i));
                cache.invalidate(home);
            }
        });
        if (r.transactions() > 0) {
            device.flush();
        }
        // Skip one sequence: an abandoned commit attempt (seq last+1) may have left blocks in the log.
        long next = r.lastSequence() + 2;
        Superblock fresh = sb.withTail(r.end(), next);
        writeSuperblock(device, pool, fresh);
        device.flush();
        ReplayReport report = new ReplayReport(r.transactions(), r.images(), sb.firstSequence(), r.lastSequence(), next,
                r.stopReason());
        LOG.log(r.transactions() > 0 ? System.Logger.Level.INFO : System.Logger.Level.DEBUG, "{0}", report);
        return new Journal(device, cache, options, fresh, report);
    }

    private static void checkRegion(BlockDevice device, long start, long length) {
        if (start < 0 || length < MIN_REGION_BLOCKS || (start + length) * BLOCK_SIZE > device.size()) {
            throw new IllegalArgumentException("journal region [" + start + ", +" + length + ") blocks must hold at least "
                    + MIN_REGION_BLOCKS + " blocks and lie within the device (" + device.size() / BLOCK_SIZE + " blocks)");
        }
    }

    private static void writeSuperblock(BlockDevice device, AlignedBufferPool pool, Superblock sb) throws IOException {
        try (AlignedBuffer b = pool.allocate(BLOCK_SIZE)) {
            sb.encode(b.segment());
            device.write(sb.regionStart() * BLOCK_SIZE, b.segment());
        }
    }

    // ---- handles --------------------------------------------------------------------------------

    /**
     * Starts a handle on the running transaction with {@code maxBlocks} credits: the most distinct
     * blocks it will add with {@link Handle#getWrite}. Waits while the running transaction is being
     * locked for commit, while it is full, and while the log lacks space (asking for a commit and a
     * checkpoint). Must not be called by a thread holding a handle of this journal.
     *
     * <p>Locks: takes the journal lock; waits on it with no other journal state held. The caller
     * must hold no lock a handle holder may need (see the class comment).
     *
     * @throws IllegalArgumentException if {@code maxBlocks} is not in [1, maxTransactionBlocks]
     * @throws IllegalStateException    if this thread already holds a handle, or the journal is closed
     * @throws JournalAbortedException  if the journal has aborted
     * @throws InterruptedIOException   if interrupted while waiting
     */
    public Handle begin(int maxBlocks) throws IOException {
        if (maxBlocks < 1 || maxBlocks > maxTransactionBlocks) {
            throw new IllegalArgumentException("a handle needs 1.." + maxTransactionBlocks + " credits, asked for " + maxBlocks);
        }
        if (currentHandle.get() != null) {
            throw new IllegalStateException("this thread already holds a handle (transaction "
                    + currentHandle.get().sequence() + "); nested handles are not supported");
        }
        boolean countedAsSpaceWaiter = false;
        lock.lock();
        try {
            while (true) {
                checkUsable("begin");
                if (closing) {
                    throw new IllegalStateException("journal is closing");
                }
                Transaction r = running;
                if (r != null && r.state == Transaction.State.LOCKED) {
                    await();
                    continue;
                }
                int reservedAfter = (r == null ? 0 : r.reservedBlocks()) + maxBlocks;
                if (reservedAfter > maxTransactionBlocks) {
                    commitRequest = Math.max(commitRequest, r.sequence);
                    changed.signalAll();
                    await();
                    continue;
                }
                if (used + JournalFormat.logBlocksFor(reservedAfter) > logSize) {
                    if (!countedAsSpaceWaiter) {
                        countedAsSpaceWaiter = true;
                        spaceWaiters++;
                    }
                    if (r != null) {
                        commitRequest = Math.max(commitRequest, r.sequence);
                    }
                    changed.signalAll();
                    await();
                    continue;
                }
                if (r == null) {
                    r = new Transaction(nextSequence++);
                    running = r;
                }
                r.openHandles++;
                r.unusedCredits += maxBlocks;
                Handle h = new Handle(this, r, maxBlocks);
                currentHandle.set(h);
                return h;
            }
        } finally {
            if (countedAsSpaceWaiter) {
                spaceWaiters--;
            }
            lock.unlock();
        }
    }

    /** See {@link Handle#getWrite}. */
    MetaBuffer getWrite(Handle h, long block, boolean read) throws IOException {
        if (h.closed) {
            throw new IllegalStateException("handle of transaction " + h.sequence() + " is closed");
        }
        if (block >= regionStart && block < logBase + logSize) {
            throw new IllegalArgumentException("block " + block + " lies inside the journal region");
        }
        if (aborted) {
            throw aborted("getWrite");
        }
        MetaBuffer b = read ? cache.get(block) : cache.getForOverwrite(block);
        boolean ok = false;
        lock.lock();
        try {
            checkUsable("getWrite");
            Transaction tx = h.transaction;
            if (b.transaction != tx) {
                if (h.credits == 0) {
                    throw new IllegalStateException("handle of transaction " + tx.sequence + " used all its "
                            + h.maxBlocks() + " credits; block " + block + " needs one more");
                }
                if (b.transaction != null) {
                    if (b.transaction != committing || b.frozen != null) {
                        throw new IllegalStateException("block " + block + " belongs to " + b.transaction
                                + ", which is neither running nor committing");
                    }
                    // The committing transaction has not logged this block yet: freeze its image.
                    AlignedBuffer f = pool.allocate(BLOCK_SIZE);
                    MemorySegment.copy(b.segment(), 0, f.segment(), 0, BLOCK_SIZE);
                    b.frozen = f;
                    b.frozenFor = b.transaction;
                    frozenCopies.incrementAndGet();
                }
                b.transaction = tx;
                b.newestSequence = tx.sequence;
                tx.blocks.put(block, b);
                h.credits--;
                tx.unusedCredits--;
                if (!b.journalPinned) {
                    cache.pin(b);
                    b.journalPinned = true;
                }
                if (tx.firstChangeNanos == 0) {
                    tx.firstChangeNanos = System.nanoTime();
                    changed.signalAll();
                }
            }
            ok = true;
            return b;
        } finally {
            lock.unlock();
            if (!ok) {
                b.close();
            }
        }
    }

    int remainingCredits(Handle h) {
        lock.lock();
        try {
            return h.credits;
        } finally {
            lock.unlock();
        }
    }

    /** See {@link Handle#close()}. */
    void stop(Handle h) {
        lock.lock();
        try {
            if (h.closed) {
                return;
            }
            h.closed = true;
            Transaction tx = h.transaction;
            tx.openHandles--;
            tx.unusedCredits -= h.credits;
            h.credits = 0;
            if (tx.blocks.size() >= Math.max(1, maxTransactionBlocks * 3 / 4)) {
                commitRequest = Math.max(commitRequest, tx.sequence);
            }
            changed.signalAll();
        } finally {
            lock.unlock();
            if (currentHandle.get() == h) {
                currentHandle.remove();
            }
        }
    }

    // ---- commit / checkpoint requests ------------------------------------------------------------

    /**
     * Commits the running transaction (and waits for one being committed) synchronously: when this
     * returns, every change of every handle closed before the call is durable (fsync semantics).
     * Handles still open keep the running transaction from committing, so this also waits for them.
     *
     * @return the sequence of the newest committed transaction (when nothing was pending, the one
     *     committed last, or the sequence before the first one this journal will use)
     * @throws JournalAbortedException if the journal aborts (e.g. the device failed the commit)
     * @throws IllegalStateException   if this thread holds a handle
     */
    public long commit() throws IOException {
        if (currentHandle.get() != null) {
            throw new IllegalStateException("commit() while holding a handle would wait for that handle");
        }
        lock.lock();
        try {
            checkUsable("commit");
            long target;
            if (running != null && !running.blocks.isEmpty()) {
                target = running.sequence;
            } else if (committing != null) {
                target = committing.sequence;
            } else {
                return lastCommitted;
            }
            commitRequest = Math.max(commitRequest, target);
            changed.signalAll();
            while (lastCommitted < target) {
                checkUsable("commit");
                await();
            }
            return target;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Writes every committed transaction home and frees its log space, synchronously (it does not
     * commit the running transaction; call {@link #commit()} first for that).
     */
    public void checkpoint() throws IOException {
        if (currentHandle.get() != null) {
            throw new IllegalStateException("checkpoint() while holding a handle");
        }
        lock.lock();
        try {
            checkUsable("checkpoint");
            long target = lastCommitted;
            if (lastCheckpointed >= target) {
                return;
            }
            checkpointRequest = Math.max(checkpointRequest, target);
            changed.signalAll();
            while (lastCheckpointed < target) {
                checkUsable("checkpoint");
                await();
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Runs {@code action} once transaction {@code sequence} is committed <em>and</em> checkpointed
     * (its blocks durable at home and no longer replayable): at once on this thread if that is
     * already so, else later on the commit thread with no journal lock held. The allocator uses it
     * to make blocks freed by transaction {@code sequence} reusable (see the class comment). If
     * the journal aborts or closes first, the action never runs.
     */
    public void onCheckpointed(long sequence, Runnable action) {
        boolean now;
        lock.lock();
        try {
            now = sequence <= lastCheckpointed;
            if (!now && abortCause == null && !shutdown) {
                callbacks.computeIfAbsent(sequence, s -> new ArrayList<>()).add(action);
            }
        } finally {
            lock.unlock();
        }
        if (now) {
            action.run();
        }
    }

    /**
     * Aborts the journal (as jbd2_journal_abort): nothing more is committed or checkpointed, and
     * every further call fails with {@link JournalAbortedException}. The log on disk stays as it is
     * and is replayed at the next open. Idempotent; the first cause wins.
     */
    public void abort(Throwable cause) {
        lock.lock();
        try {
            if (abortCause == null) {
                abortCause = cause == null ? new IOException("aborted by caller") : cause;
                aborted = true;
                LOG.log(System.Logger.Level.ERROR, "journal at block " + regionStart + " aborted", abortCause);
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    // ---- commit thread -----------------------------------------------------------------------

    private void runCommitThread() {
        long commitNanos = options.commitInterval().toNanos();
        long checkpointNanos = options.checkpointInterval().toNanos();
        while (true) {
            Transaction toCommit = null;
            boolean toCheckpoint = false;
            lock.lock();
            try {
                while (true) {
                    if (abortCause != null || shutdown) {
                        return;
                    }
                    long now = System.nanoTime();
                    long waitNanos = Long.MAX_VALUE;
                    Transaction r = running;
                    if (r != null && !r.blocks.isEmpty()) {
                        if (commitRequest >= r.sequence || closing) {
                            toCommit = r;
                        } else if (commitNanos > 0) {
                            long due = r.firstChangeNanos + commitNanos - now;
                            if (due <= 0) {
                                toCommit = r;
                            } else {
                                waitNanos = Math.min(waitNanos, due);
                            }
                        }
                    }
                    if (!checkpointList.isEmpty()) {
                        if (checkpointRequest > lastCheckpointed || spaceWaiters > 0
                                || used * 100 > logSize * options.checkpointPercent()) {
                            toCheckpoint = true;
                        } else if (checkpointNanos > 0) {
                            long due = checkpointList.peekFirst().commitNanos + checkpointNanos - now;
                            if (due <= 0) {
                                toCheckpoint = true;
                            } else {
                                waitNanos = Math.min(waitNanos, due);
                            }
                        }
                    }
                    // Free space first when someone waits for it; otherwise commit first.
                    if (toCheckpoint && spaceWaiters > 0) {
                        toCommit = null;
                    }
                    if (toCommit != null) {
                        toCheckpoint = false;
                    }
                    if (toCommit != null || toCheckpoint) {
                        break;
                    }
                    if (waitNanos == Long.MAX_VALUE) {
                        changed.awaitUninterruptibly();
                    } else {
                        changed.awaitNanos(waitNanos);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } finally {
                lock.unlock();
            }
            try {
                if (toCommit != null) {
                    commitTransaction(toCommit);
                } else {
                    checkpointCommitted();
                }
            } catch (IOException | RuntimeException | Error e) {
                abort(e);
                return;
            }
        }
    }

    /** Commits the running transaction {@code tx}. Runs on the commit thread; no lock held on entry. */
    private void commitTransaction(Transaction tx) throws IOException {
        int n;
        int descriptors;
        int total;
        lock.lock();
        try {
            tx.state = Transaction.State.LOCKED;
            changed.signalAll();
            while (tx.openHandles > 0) {
                if (abortCause != null) {
                    throw aborted("commit");
                }
                changed.awaitUninterruptibly();
            }
            tx.state = Transaction.State.COMMITTING;
            running = null;
            committing = tx;
            n = tx.blocks.size();
            descriptors = JournalFormat.descriptorsFor(n);
            total = JournalFormat.logBlocksFor(n);
            tx.logStart = head;
            tx.logBlocks = total;
            head = (head + total) % logSize;
            used += total;
            if (used > logSize) {
                throw new IllegalStateException("log overflow: " + used + " of " + logSize + " slots (credit accounting bug)");
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        racePoint.accept("commit.locked", tx.sequence);

        List<MetaBuffer> buffers = tx.buffers();
        AlignedBuffer logBuffer = pool.allocate((long) total * BLOCK_SIZE);
        tx.log = logBuffer;
        MemorySegment log = logBuffer.segment();
        long[] homes = new long[n];
        // Capture the images: frozen copy if a newer transaction took the block, else the live bytes.
        for (int i = 0; i < n; i++) {
            MetaBuffer b = buffers.get(i);
            homes[i] = b.block();
            MemorySegment dst = log.asSlice((long) (descriptors + i) * BLOCK_SIZE, BLOCK_SIZE);
            lock.lock();
            try {
                if (b.frozenFor == tx) {
                    MemorySegment.copy(b.frozen.segment(), 0, dst, 0, BLOCK_SIZE);
                    b.frozen.close();
                    b.frozen = null;
                    b.frozenFor = null;
                } else {
                    MemorySegment.copy(b.segment(), 0, dst, 0, BLOCK_SIZE);
                }
                if (b.transaction == tx) {
                    b.transaction = null;
                }
            } finally {
                lock.unlock();
            }
        }
        tx.homes = homes;
        racePoint.accept("commit.captured", tx.sequence);

        // Descriptors, checksums, commit block.
        CRC32C txCrc = new CRC32C();
        for (int d = 0; d < descriptors; d++) {
            MemorySegment desc = log.asSlice((long) d * BLOCK_SIZE, BLOCK_SIZE);
            JournalFormat.header(desc, JournalFormat.TYPE_DESCRIPTOR, tx.sequence, superblock().journalId());
            int first = d * JournalFormat.TAGS_PER_DESCRIPTOR;
            int tags = Math.min(JournalFormat.TAGS_PER_DESCRIPTOR, n - first);
            JournalFormat.putInt(desc, JournalFormat.DESC_INDEX, d);
            JournalFormat.putInt(desc, JournalFormat.DESC_COUNT, descriptors);
            JournalFormat.putInt(desc, JournalFormat.DESC_IMAGE_COUNT, n);
            JournalFormat.putInt(desc, JournalFormat.DESC_TAG_COUNT, tags);
            for (int t = 0; t < tags; t++) {
                long off = JournalFormat.DESC_TAGS + (long) t * JournalFormat.TAG_SIZE;
                MemorySegment image = log.asSlice((long) (descriptors + first + t) * BLOCK_SIZE, BLOCK_SIZE);
                JournalFormat.putLong(desc, off, homes[first + t]);
                JournalFormat.putInt(desc, off + 8, 0);
                JournalFormat.putInt(desc, off + 12, JournalFormat.crc(image));
            }
            JournalFormat.seal(desc);
            JournalFormat.update(txCrc, desc);
        }
        JournalFormat.update(txCrc, log.asSlice((long) descriptors * BLOCK_SIZE, (long) n * BLOCK_SIZE));
        MemorySegment commitBlock = log.asSlice((long) (descriptors + n) * BLOCK_SIZE, BLOCK_SIZE);
        JournalFormat.header(commitBlock, JournalFormat.TYPE_COMMIT, tx.sequence, superblock().journalId());
        JournalFormat.putInt(commitBlock, JournalFormat.COMMIT_IMAGE_COUNT, n);
        JournalFormat.putInt(commitBlock, JournalFormat.COMMIT_DESC_COUNT, descriptors);
        JournalFormat.putInt(commitBlock, JournalFormat.COMMIT_TX_CRC, (int) txCrc.getValue());
        JournalFormat.putLong(commitBlock, JournalFormat.COMMIT_TIME, System.currentTimeMillis());
        JournalFormat.seal(commitBlock);

        // Ordered mode: log body, flush (also makes earlier data writes durable), commit block, flush.
        LogScanner.writeLog(device, logBase, logSize, tx.logStart, log.asSlice(0, (long) (descriptors + n) * BLOCK_SIZE));
        device.flush();
        racePoint.accept("commit.logged", tx.sequence);
        LogScanner.writeLog(device, logBase, logSize, (tx.logStart + descriptors + n) % logSize, commitBlock);
        device.flush();

        lock.lock();
        try {
            tx.state = Transaction.State.COMMITTED;
            tx.commitNanos = System.nanoTime();
            committing = null;
            lastCommitted = tx.sequence;
            checkpointList.addLast(tx);
            commits.incrementAndGet();
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        racePoint.accept("commit.done", tx.sequence);
    }

    private Superblock superblock() {
        lock.lock();
        try {
            return superblock;
        } finally {
            lock.unlock();
        }
    }

    /** Checkpoints every committed transaction. Runs on the commit thread; no lock held on entry. */
    private void checkpointCommitted() throws IOException {
        List<Transaction> batch;
        Superblock next;
        long freed = 0;
        long target;
        lock.lock();
        try {
            batch = new ArrayList<>(checkpointList);
            if (batch.isEmpty()) {
                return;
            }
            Transaction last = batch.getLast();
            target = last.sequence;
            for (Transaction t : batch) {
                freed += t.logBlocks;
            }
            next = superblock.withTail((last.logStart + last.logBlocks) % logSize, target + 1);
        } finally {
            lock.unlock();
        }
        // The newest committed image of every block; the live buffers may hold uncommitted changes.
        TreeMap<Long, MemorySegment> newest = new TreeMap<>();
        for (Transaction t : batch) {
            int descriptors = JournalFormat.descriptorsFor(t.homes.length);
            for (int i = 0; i < t.homes.length; i++) {
                newest.put(t.homes[i], t.log.segment().asSlice((long) (descriptors + i) * BLOCK_SIZE, BLOCK_SIZE));
            }
        }
        for (Map.Entry<Long, MemorySegment> e : newest.entrySet()) {
            device.write(e.getKey() * BLOCK_SIZE, e.getValue());
        }
        device.flush();
        racePoint.accept("checkpoint.home", target);
        writeSuperblock(device, pool, next);
        device.flush();

        List<MetaBuffer> unpin = new ArrayList<>();
        lock.lock();
        try {
            superblock = next;
            used -= freed;
            for (Transaction t : batch) {
                checkpointList.removeFirst();
                t.state = Transaction.State.CHECKPOINTED;
                for (MetaBuffer b : t.blocks.values()) {
                    if (b.journalPinned && b.transaction == null && b.newestSequence <= target) {
                        b.journalPinned = false;
                        unpin.add(b);
                    }
                }
            }
            checkpoints.incrementAndGet();
            changed.signalAll(); // log space is free: begin() may go on
        } finally {
            lock.unlock();
        }
        for (Transaction t : batch) {
            t.log.close();
            t.log = null;
        }
        for (MetaBuffer b : unpin) {
            b.close();
        }
        // Callbacks run before lastCheckpointed moves, so checkpoint() returns after them; the loop
        // also catches callbacks registered while earlier ones ran.
        while (true) {
            List<Runnable> due = new ArrayList<>();
            lock.lock();
            try {
                Map<Long, List<Runnable>> ready = callbacks.headMap(target, true);
                for (List<Runnable> l : ready.values()) {
                    due.addAll(l);
                }
                ready.clear();
                if (due.isEmpty()) {
                    lastCheckpointed = target;
                    changed.signalAll();
                    return;
                }
            } finally {
                lock.unlock();
            }
            for (Runnable r : due) {
                try {
                    r.run();
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.ERROR, "onCheckpointed callback failed", e);
                }
            }
        }
    }

    // ---- helpers --------------------------------------------------------------------------------

    /** Holds lock. */
    private void checkUsable(String call) throws JournalAbortedException {
        if (abortCause != null) {
            throw aborted(call);
        }
        if (shutdown) {
            throw new IllegalStateException("journal is closed");
        }
    }

    private JournalAbortedException aborted(String call) {
        return new JournalAbortedException(call, abortCause);
    }

    /** Waits on {@code changed}; holds lock. */
    private void await() throws InterruptedIOException {
        try {
            changed.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for the journal");
        }
    }

    // ---- state, for callers, tests and tools ---------------------------------------------------

    /** What replay did when this journal was opened. */
    public ReplayReport replayReport() {
        return replayReport;
    }

    /** The most credits one transaction (and so one handle) may hold. */
    public int maxTransactionBlocks() {
        return maxTransactionBlocks;
    }

    /** Log slots (the region minus its superblock). */
    public long logSize() {
        return logSize;
    }

    /** Log slots in use by committed-not-checkpointed and committing transactions. */
    public long logUsed() {
        lock.lock();
        try {
            return used;
        } finally {
            lock.unlock();
        }
    }

    /** Sequence of the newest durable (committed) transaction. */
    public long lastCommittedSequence() {
        lock.lock();
        try {
            return lastCommitted;
        } finally {
            lock.unlock();
        }
    }

    /** Sequence of the newest checkpointed transaction. */
    public long lastCheckpointedSequence() {
        lock.lock();
        try {
            return lastCheckpointed;
        } finally {
            lock.unlock();
        }
    }

    public boolean isAborted() {
        return aborted;
    }

    /** Transactions committed since open. */
    public long commitCount() {
        return commits.get();
    }

    /** Checkpoints completed since open. */
    public long checkpointCount() {
        return checkpoints.get();
    }

    /** Frozen (copy-on-write) images made since open. */
    public long frozenCopyCount() {
        return frozenCopies.get();
    }

    /** Test hook: called at named points of commit and checkpoint on the commit thread. */
    void setRacePoint(BiConsumer<String, Long> hook) {
        racePoint = hook == null ? (name, seq) -> { } : hook;
    }

    /**
     * Commits and checkpoints everything (unless aborted), stops the commit thread and drops the
     * journal's pins on cached blocks. Waits for open handles (they must close). The cache and the
     * device stay open. If the final commit or checkpoint fails, the journal aborts and this
     * throws that failure after releasing everything.
     */
    @Override
    public void close() throws IOException {
        if (currentHandle.get() != null) {
            throw new IllegalStateException("close() while holding a handle");
        }
        lock.lock();
        try {
            if (closing) {
                return;
            }
            closing = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        IOException failure = null;
        if (!aborted) {
            try {
                commit();
                checkpoint();
            } catch (IOException e) {
                failure = e;
            }
        }
        lock.lock();
        try {
            shutdown = true;
            callbacks.clear();
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        boolean interrupted = false;
        while (commitThread.isAlive()) {
            try {
                commitThread.join(TimeUnit.SECONDS.toMillis(1));
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        releaseAll();
        if (failure != null) {
            throw failure;
        }
    }

    /** Frees log buffers, frozen copies and the journal's cache pins; the commit thread has ended. */
    private void releaseAll() {
        List<MetaBuffer> unpin = new ArrayList<>();
        lock.lock();
        try {
            List<Transaction> all = new ArrayList<>(checkpointList);
            if (committing != null) {
                all.add(committing);
            }
            if (running != null) {
                all.add(running);
            }
            for (Transaction t : all) {
                if (t.log != null) {
                    t.log.close();
                    t.log = null;
                }
                for (MetaBuffer b : t.blocks.values()) {
                    if (b.frozen != null) {
                        b.frozen.close();
                        b.frozen = null;
                        b.frozenFor = null;
                    }
                    b.transaction = null;
                    if (b.journalPinned) {
                        b.journalPinned = false;
                        unpin.add(b);
                    }
                }
            }
            checkpointList.clear();
            committing = null;
            running = null;
        } finally {
            lock.unlock();
        }
        for (MetaBuffer b : unpin) {
            b.close();
        }
    }
}
