package io.coherentfs.blockdev.engine;

import io.coherentfs.blockdev.error.ErrnoException;
import java.lang.System.Logger.Level;

/** Chooses and starts an {@link IoEngine}. */
public final class IoEngines {
    private static final System.Logger LOG = System.getLogger(IoEngines.class.getName());

    private IoEngines() {}

    /**
     * Starts the engine {@code kind} asks for. AUTO tries io_uring and falls back to the thread
     * pool when the kernel refuses it (disabled by kernel.io_uring_disabled, filtered by seccomp in
     * a container, too old); the log says which engine runs and, for a fallback, why.
     *
     * @param queueDepth how many requests the engine keeps in flight before submitters wait
     */
    public static IoEngine start(IoEngineKind kind, int queueDepth) throws ErrnoException {
        return switch (kind) {
            case IO_URING -> logged(IoUringEngine.start(queueDepth), "forced");
            case THREAD_POOL -> logged(new ThreadPoolIoEngine(queueDepth), "forced");
            case AUTO -> {
                try {
                    yield logged(IoUringEngine.start(queueDepth), "auto");
                } catch (ErrnoException | UnsupportedOperationException e) {
                    LOG.log(Level.INFO, "io_uring unavailable ({0}); using the thread-pool engine", e.getMessage());
                    yield logged(new ThreadPoolIoEngine(queueDepth), "auto fallback");
                }
            }
        };
    }

    /** Debug level: every command opens a device, and its output is no place for this line. */
    private static IoEngine logged(IoEngine engine, String how) {
        LOG.log(Level.DEBUG, "IO engine: {0} ({1})", engine.name(), how);
        return engine;
    }
}
