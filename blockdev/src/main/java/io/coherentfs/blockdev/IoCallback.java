package io.coherentfs.blockdev;

import java.io.IOException;

/**
 * The completion of one asynchronous device request: {@code error} is null when every byte was
 * transferred (or the flush is durable), else the typed failure.
 *
 * <p>Runs on the IO engine's completion thread, the engine's "interrupt context": it must not
 * block (no IO, no lock that IO submitters hold while waiting) and should be short. Hand anything
 * heavier to another executor. A request refused before it reached the engine (misaligned, out of
 * range, device closed) completes on the submitting thread instead.
 */
@FunctionalInterface
public interface IoCallback {
    void onComplete(IOException error);
}
