package io.coherentfs.core.vfs;

import io.coherentfs.blockdev.error.ErrnoException;

/** The errno a call fails with, for tests that check Linux's error codes. */
final class Errnos {
    private Errnos() {}

    interface Call {
        void run() throws Exception;
    }

    static int errno(Call c) {
        try {
            c.run();
        } catch (ErrnoException e) {
            return e.errno();
        } catch (Exception e) {
            throw new AssertionError("expected an ErrnoException, got " + e, e);
        }
        throw new AssertionError("expected an error");
    }
}
