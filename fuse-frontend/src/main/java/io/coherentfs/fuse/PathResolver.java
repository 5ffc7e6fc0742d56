package io.coherentfs.fuse;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.Vfs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Turns libfuse 2's paths into the inode numbers the {@link Vfs} speaks, with a dentry cache of
 * {@code (parent inode, name) -> inode}.
 *
 * <h2>Why a cache is safe</h2>
 * The image is locked by this daemon for its whole life, so every change of the namespace comes
 * through this mount and through {@link #invalidate} from the handler that made it: unlink,
 * rmdir and rename drop the names they remove or replace. Entries are keyed by parent inode and
 * one name, so renaming a directory leaves its children's entries valid (their parent inode did
 * not change); nothing needs a prefix scan.
 *
 * <h2>Concurrency</h2>
 * A hit needs no lock. A miss asks the Vfs and inserts under the read side of {@code namespace};
 * the handlers that remove names hold the write side around their Vfs call and the
 * invalidation, so a miss can never insert a name that a concurrent unlink has just removed (a
 * lookup that ran before the unlink inserts before the unlink's invalidation, which then drops it).
 *
 * <h2>Lookup counts</h2>
 * The cache holds no lookup counts: every Vfs call that counted a lookup is given back at once
 * ({@link Vfs#forget}). An inode can only lose its last name through {@link #invalidate}'s
 * callers, so a cached inode number always names a live inode.
 */
final class PathResolver {
    record Key(long parent, String name) {}

    /** A path split into its parent directory and last name. */
    record Split(String parent, String name) {}

    private final Vfs vfs;
    private final Cache<Key, Long> dentries;
    final ReentrantReadWriteLock namespace = new ReentrantReadWriteLock();

    PathResolver(Vfs vfs, long maxEntries) {
        this.vfs = vfs;
        this.dentries = Caffeine.newBuilder().maximumSize(maxEntries).build();
    }

    /** The inode of {@code path} ("/" is the root); ENOENT, ENOTDIR as the Vfs says. */
    long resolve(String path) throws IOException {
        if (path == null) {
            throw new ErrnoException(Errno.EINVAL, "resolve", "no path");
        }
        long ino = Vfs.ROOT;
        int i = 1;
        int n = path.length();
        while (i < n) {
            int slash = path.indexOf('/', i);
            int end = slash < 0 ? n : slash;
            if (end > i) {
                ino = child(ino, path.substring(i, end));
            }
            i = end + 1;
        }
        return ino;
    }

    /** The inode of {@code name} in directory {@code parent}. */
    long child(long parent, String name) throws IOException {
        Key key = new Key(parent, name);
        Long cached = dentries.getIfPresent(key);
        if (cached != null) {
            return cached;
        }
        namespace.readLock().lock();
        try {
            Attr a = vfs.lookup(parent, bytes(name));
            try {
                dentries.put(key, a.ino());
            } finally {
                vfs.forget(a.ino(), 1);
            }
            return a.ino();
        } finally {
            namespace.readLock().unlock();
        }
    }

    /** Records a name the handler just created (the Vfs counted a lookup: given back here). */
    void created(long parent, String name, Attr attr) throws IOException {
        dentries.put(new Key(parent, name), attr.ino());
        vfs.forget(attr.ino(), 1);
    }

    /** Drops a name that was removed or replaced. Call with the write side of {@link #namespace} held. */
    void invalidate(long parent, String name) {
        dentries.invalidate(new Key(parent, name));
    }

    static Split split(String path) throws ErrnoException {
        if (path == null || path.equals("/") || path.isEmpty()) {
            throw new ErrnoException(Errno.EINVAL, "resolve", "no name in path " + path);
        }
        int slash = path.lastIndexOf('/');
        return new Split(slash <= 0 ? "/" : path.substring(0, slash), path.substring(slash + 1));
    }

    static byte[] bytes(String name) {
        return name.getBytes(StandardCharsets.UTF_8);
    }
}
