package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/**
 * FUSE_INIT: what the kernel offers and what we take, decided once per connection.
 *
 * <p>Taken when offered: ASYNC_READ (readahead in parallel), BIG_WRITES and MAX_PAGES (1 MiB
 * requests: max_write {@link #MAX_WRITE}, max_pages 256), ASYNC_DIO (an application's async
 * direct IO reaches us as parallel requests instead of one at a time), PARALLEL_DIROPS, and
 * with FUSE_INIT_EXT the flags2 bit DIRECT_IO_ALLOW_MMAP (7.39: shared mmap of a file opened
 * FOPEN_DIRECT_IO works instead of failing with ENODEV).
 *
 * <p>Never taken: WRITEBACK_CACHE (the engine owns the page cache; the kernel's must stay
 * write-through for coherence), EXPORT_SUPPORT (no lookups of "." and ".."; no NFS export),
 * ATOMIC_O_TRUNC (the kernel then truncates with a SETATTR, which also truncates its own page
 * cache under its locks, rather than only zeroing i_size at open), SETXATTR_EXT (keeps
 * fuse_setxattr_in at its 8-byte compat size), DO_READDIRPLUS, POSIX locks (the kernel keeps
 * locks locally), SECURITY_CTX and CREATE_SUPP_GROUP (no request extensions ever arrive).
 *
 * @param major        the major we reply with (7)
 * @param minor        the minor both sides use: the smaller of the kernel's and {@link FuseAbi#OUR_MINOR}
 * @param flags        the INIT flags we reply with, bits 32..63 being flags2
 * @param maxReadahead as the kernel offered
 * @param error        0, or the errno to refuse the connection with (an unsupported version)
 */
public record InitNegotiation(int major, int minor, long flags, int maxReadahead, int error) {
    /** Bytes per WRITE (and READ) request: FUSE_MAX_MAX_PAGES (256) pages of 4 KiB. */
    public static final int MAX_WRITE = 1 << 20;
    public static final int MAX_PAGES = MAX_WRITE / 4096;
    /** Background requests (readahead, async DIO) the kernel lets be in flight at once. */
    public static final int MAX_BACKGROUND = 64;
    public static final int CONGESTION_THRESHOLD = 48;

    /** EPROTO (asm-generic/errno.h): what libfuse refuses an unsupported protocol version with. */
    static final int EPROTO = 71;

    static final long WANTED = FuseAbi.ASYNC_READ | FuseAbi.BIG_WRITES | FuseAbi.ASYNC_DIO
            | FuseAbi.PARALLEL_DIROPS | FuseAbi.MAX_PAGES | FuseAbi.INIT_EXT | FuseAbi.DIRECT_IO_ALLOW_MMAP;

    /** Decides from fuse_init_in ({@code in}: the request body, 16 or 64 bytes). */
    public static InitNegotiation decide(MemorySegment in) {
        int kernelMajor = in.get(JAVA_INT, FuseAbi.INIT_IN_MAJOR);
        int kernelMinor = in.get(JAVA_INT, FuseAbi.INIT_IN_MINOR);
        int readahead = in.get(JAVA_INT, FuseAbi.INIT_IN_MAX_READAHEAD);
        long offered = Integer.toUnsignedLong(in.get(JAVA_INT, FuseAbi.INIT_IN_FLAGS));
        if ((offered & FuseAbi.INIT_EXT) != 0 && in.byteSize() >= FuseAbi.INIT_IN_FLAGS2 + 4) {
            offered |= Integer.toUnsignedLong(in.get(JAVA_INT, FuseAbi.INIT_IN_FLAGS2)) << 32;
        }
        if (kernelMajor > FuseAbi.KERNEL_MAJOR) {
            // fuse.h "Version negotiation": answer with our major only; the kernel sends INIT again.
            return new InitNegotiation(FuseAbi.KERNEL_MAJOR, FuseAbi.OUR_MINOR, 0, 0, 0);
        }
        if (kernelMajor < FuseAbi.KERNEL_MAJOR || kernelMinor < FuseAbi.MIN_MINOR) {
            return new InitNegotiation(kernelMajor, kernelMinor, 0, 0, EPROTO);
        }
        int minor = Math.min(kernelMinor, FuseAbi.OUR_MINOR);
        return new InitNegotiation(FuseAbi.KERNEL_MAJOR, minor, offered & WANTED, readahead, 0);
    }

    /** Whether this reply is a version answer after which the kernel sends INIT again. */
    public boolean versionOnly() {
        return error == 0 && flags == 0 && maxReadahead == 0;
    }

    public boolean has(long flag) {
        return (flags & flag) != 0;
    }

    /** Encodes fuse_init_out into {@code out} (at least {@link FuseAbi#INIT_OUT_BYTES}); returns its size. */
    public int encode(MemorySegment out) {
        out.asSlice(0, FuseAbi.INIT_OUT_BYTES).fill((byte) 0);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_MAJOR, major);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_MINOR, minor);
        if (versionOnly()) {
            return FuseAbi.INIT_OUT_BYTES;
        }
        out.set(JAVA_INT, FuseAbi.INIT_OUT_MAX_READAHEAD, maxReadahead);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_FLAGS, (int) flags);
        out.set(JAVA_SHORT, FuseAbi.INIT_OUT_MAX_BACKGROUND, (short) MAX_BACKGROUND);
        out.set(JAVA_SHORT, FuseAbi.INIT_OUT_CONGESTION_THRESHOLD, (short) CONGESTION_THRESHOLD);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_MAX_WRITE, MAX_WRITE);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_TIME_GRAN, 1);
        out.set(JAVA_SHORT, FuseAbi.INIT_OUT_MAX_PAGES, (short) MAX_PAGES);
        out.set(JAVA_INT, FuseAbi.INIT_OUT_FLAGS2, (int) (flags >>> 32));
        return FuseAbi.INIT_OUT_BYTES;
    }

    @Override
    public String toString() {
        return "FUSE " + major + "." + minor + ", flags 0x" + Long.toHexString(flags) + ", max_write " + MAX_WRITE
                + ", max_readahead " + maxReadahead;
    }
}
