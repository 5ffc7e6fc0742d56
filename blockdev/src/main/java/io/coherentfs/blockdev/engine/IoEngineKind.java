package io.coherentfs.blockdev.engine;

/** Which asynchronous engine a device uses. */
public enum IoEngineKind {
    /** io_uring where the kernel offers it, else the thread pool; the log says which and why. */
    AUTO,
    /** io_uring or fail: for tests and benchmarks that must not silently measure the fallback. */
    IO_URING,
    /** The thread pool, even where io_uring works. */
    THREAD_POOL;

    /** Parses "auto", "io_uring"/"io-uring"/"uring", "thread-pool"/"threads"/"pool". */
    public static IoEngineKind parse(String s) {
        return switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> AUTO;
            case "io_uring", "io-uring", "uring" -> IO_URING;
            case "thread-pool", "thread_pool", "threads", "pool" -> THREAD_POOL;
            default -> throw new IllegalArgumentException(
                    "unknown IO engine '" + s + "' (expected auto, io_uring or thread-pool)");
        };
    }
}
