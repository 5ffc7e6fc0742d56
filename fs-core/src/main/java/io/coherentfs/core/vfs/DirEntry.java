package io.coherentfs.core.vfs;

import java.nio.charset.StandardCharsets;

/**
 * One readdir entry. {@code nextCookie} is where a later readdir resumes to continue after this
 * entry (FUSE's and getdents' d_off); it stays valid while the directory changes.
 *
 * @param type the S_IFMT bits of the entry's mode
 */
public record DirEntry(byte[] name, long ino, int type, long nextCookie) {
    public String nameString() {
        return new String(name, StandardCharsets.UTF_8);
    }
}
