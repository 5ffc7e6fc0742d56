package io.coherentfs.core.vfs;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Page-granular mapped access to a file through the engine's page cache: what {@code mmap(2)}
 * with {@code MAP_SHARED} gives a process, for programs that embed the engine (DESIGN.md
 * section 1). Each page touched is a page fault: a load faults the page in through the cache's
 * add path; a store also does what {@code page_mkwrite} does (reserves space for a hole, dirties
 * the page, updates mtime). Stores are seen by every read and view of the file at once and reach
 * the device with the file's writeback.
 *
 * <p>Touching a page wholly past the end of the file fails with EFAULT (a process would get
 * SIGBUS). Bytes past the end inside the last page read as zeros, and stores there are dropped,
 * as writeback drops them on Linux. A view keeps the file open until {@link #close}.
 */
public interface MappedView extends AutoCloseable {
    /** The inode this view maps. */
    long ino();

    /** Copies {@code dst.byteSize()} bytes at {@code position} of the file into {@code dst}. */
    void load(long position, MemorySegment dst) throws IOException;

    /** Copies {@code src} into the file at {@code position}; EBADF if the file was opened read-only. */
    void store(long position, MemorySegment src) throws IOException;

    @Override
    void close() throws IOException;
}
