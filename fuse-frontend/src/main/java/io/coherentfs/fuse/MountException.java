package io.coherentfs.fuse;

import java.io.IOException;

/** A mount refused for a reason the user can fix; the message is the one line the CLI prints. */
public final class MountException extends IOException {
    public MountException(String message) {
        super(message);
    }

    public MountException(String message, Throwable cause) {
        super(message, cause);
    }
}
