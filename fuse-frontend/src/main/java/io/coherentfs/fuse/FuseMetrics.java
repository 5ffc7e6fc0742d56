package io.coherentfs.fuse;

import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The frontend's meters, in the one registry the daemon shares with the engine:
 * {@code coherentfs_fuse_requests_seconds{op}} (a timer: count, sum and max per FUSE operation),
 * {@code coherentfs_fuse_errors_total{op,errno}}, {@code coherentfs_fuse_bytes_total{op,path}}
 * (read/write bytes split by buffered and direct opens), {@code coherentfs_fuse_dio_requests_total{op}}
 * and the gauge {@code coherentfs_fuse_open_files}.
 */
public final class FuseMetrics {
    public enum Op {
        GETATTR, FGETATTR, READLINK, MKNOD, MKDIR, UNLINK, RMDIR, SYMLINK, RENAME, LINK, CHMOD, CHOWN, TRUNCATE,
        FTRUNCATE, UTIMENS, OPEN, CREATE, READ, WRITE, STATFS, FLUSH, RELEASE, FSYNC, SETXATTR, GETXATTR,
        LISTXATTR, REMOVEXATTR, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, ACCESS, FALLOCATE,
        // transport 2 (io.coherentfs.fuse.kernel) only: the low-level protocol's own operations
        LOOKUP, FORGET, SETATTR, LSEEK, SYNCFS;

        public final String tag = name().toLowerCase(java.util.Locale.ROOT);
    }

    private final MeterRegistry registry;
    private final Map<Op, Timer> timers = new EnumMap<>(Op.class);
    private final Map<String, Counter> errors = new ConcurrentHashMap<>();
    public final DistributionSummary readBuffered;
    public final DistributionSummary readDirect;
    public final DistributionSummary writeBuffered;
    public final DistributionSummary writeDirect;

    public FuseMetrics(MeterRegistry registry, Supplier<Number> openFiles) {
        this.registry = registry;
        for (Op op : Op.values()) {
            timers.put(op, Timer.builder("coherentfs.fuse.requests").description("FUSE requests by operation")
                    .tag("op", op.tag).register(registry));
        }
        readBuffered = bytes(registry, "read", "buffered");
        readDirect = bytes(registry, "read", "direct");
        writeBuffered = bytes(registry, "write", "buffered");
        writeDirect = bytes(registry, "write", "direct");
        Gauge.builder("coherentfs.fuse.open.files", () -> openFiles.get()).description("open file handles")
                .register(registry);
    }

    private static DistributionSummary bytes(MeterRegistry registry, String op, String path) {
        return DistributionSummary.builder("coherentfs.fuse.io.bytes").baseUnit("bytes")
                .description("bytes moved by read/write requests; path=direct for O_DIRECT opens")
                .tag("op", op).tag("path", path).register(registry);
    }

    public long start() {
        return System.nanoTime();
    }

    public void done(Op op, long startNanos) {
        timers.get(op).record(System.nanoTime() - startNanos, java.util.concurrent.TimeUnit.NANOSECONDS);
    }

    /**
     * The errno a request that threw {@code e} is answered with, by either transport: an
     * {@link ErrnoException}'s own (logged at FINE, or WARNING when it is EIO), anything else EIO,
     * logged with its stack on {@code log} (the transport's logger). The error is counted.
     */
    public int failed(Op op, Throwable e, Logger log) {
        int errno;
        if (e instanceof ErrnoException ee) {
            errno = ee.errno();
            if (errno == Errno.EIO.code()) {
                log.log(Level.WARNING, op.tag + ": " + ee.getMessage(), ee);
            } else if (log.isLoggable(Level.FINE)) {
                log.fine(op.tag + ": " + ee.getMessage());
            }
        } else {
            errno = Errno.EIO.code();
            log.log(e instanceof Error ? Level.SEVERE : Level.WARNING, op.tag + " failed: " + e, e);
        }
        error(op, errno);
        return errno;
    }

    public void error(Op op, int errno) {
        errors.computeIfAbsent(op.tag + "/" + errno, k -> Counter.builder("coherentfs.fuse.errors")
                .description("FUSE requests answered with an error").tag("op", op.tag)
                .tag("errno", Errno.of(errno) == null ? Integer.toString(errno)
                        : Errno.of(errno).name())
                .register(registry)).increment();
    }
}
