package io.coherentfs.core;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.cache.Folio;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.vfs.MappedView;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A {@link MappedView}: every page touched goes through {@link BufferedIo#fault}, which holds the
 * invalidate lock shared and the add lock's ADD side while it adds and fills the page; a store
 * then dirties the locked folio as {@code page_mkwrite} would. No inode rwsem is taken, as a page
 * fault takes none. The view counts as an open of the inode.
 */
final class MappedFile implements MappedView {
    private static final int PAGE = Folio.PAGE_SIZE;

    private final CoherentFs fs;
    private final BufferedIo buffered;
    private final LiveInode li;
    private final boolean writable;
    private volatile boolean closed;

    MappedFile(CoherentFs fs, BufferedIo buffered, LiveInode li, boolean writable) {
        this.fs = fs;
        this.buffered = buffered;
        this.li = li;
        this.writable = writable;
    }

    @Override
    public long ino() {
        return li.ino;
    }

    private void checkOpen(String call, long position, long length) throws ErrnoException {
        if (closed) {
            throw new ErrnoException(Errno.EFAULT, call, "the view of inode " + li.ino + " is unmapped");
        }
        if (position < 0 || length < 0) {
            throw new ErrnoException(Errno.EFAULT, call, "negative position or length");
        }
    }

    @Override
    public void load(long position, MemorySegment dst) throws IOException {
        checkOpen("load", position, dst.byteSize());
        long done = 0;
        while (done < dst.byteSize()) {
            long p = position + done;
            int inPage = (int) (p & (PAGE - 1));
            int n = (int) Math.min(PAGE - inPage, dst.byteSize() - done);
            Folio f = buffered.fault(li, p / PAGE, false);
            try {
                MemorySegment.copy(f.data(), inPage, dst, done, n);
            } finally {
                f.unlock();
            }
            done += n;
        }
    }

    @Override
    public void store(long position, MemorySegment src) throws IOException {
        checkOpen("store", position, src.byteSize());
        if (!writable) {
            throw new ErrnoException(Errno.EBADF, "store", "the view of inode " + li.ino + " is read-only");
        }
        long done = 0;
        while (done < src.byteSize()) {
            long p = position + done;
            int inPage = (int) (p & (PAGE - 1));
            int n = (int) Math.min(PAGE - inPage, src.byteSize() - done);
            long keep = Math.min(n, Math.max(0, li.size - p)); // past EOF: dropped, as writeback would
            // A store wholly past EOF inside the last page changes nothing: a read fault (EFAULT
            // past the last page) without page_mkwrite's reservation.
            Folio f = buffered.fault(li, p / PAGE, keep > 0);
            try {
                if (keep > 0) {
                    MemorySegment.copy(src, done, f.data(), inPage, keep);
                    if (f.markDirty()) {
                        li.noteDirtied();
                    }
                    li.touchData(Timespec.now());
                }
            } finally {
                f.unlock();
            }
            done += n;
        }
    }

    /** This view as the source of a buffered write: read page by page, faulting as a process would. */
    BufferedIo.Source source(long from, long length) {
        return new BufferedIo.Source() {
            @Override
            public long size() {
                return length;
            }

            @Override
            public void copyTo(long offset, MemorySegment dst, long dstOffset, long n) throws IOException {
                load(from + offset, dst.asSlice(dstOffset, n));
            }

            @Override
            public boolean mayFault() {
                return true;
            }
        };
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        fs.unref(li.ino);
    }

    @Override
    public String toString() {
        return "MappedView[ino=" + li.ino + (writable ? ", rw" : ", ro") + (closed ? ", closed" : "") + "]";
    }
}
