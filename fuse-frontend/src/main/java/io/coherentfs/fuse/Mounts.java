package io.coherentfs.fuse;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** The kernel's mount table (/proc/self/mountinfo) and unmounting. */
public final class Mounts {
    private Mounts() {}

    /** One line of mountinfo: where, what type, from what source, with which options. */
    public record Entry(Path mountpoint, String fstype, String source, String options) {}

    public static List<Entry> all() throws IOException {
        List<Entry> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
            // 36 35 98:0 /root /mnt rw,noatime shared:1 - fuse.coherentfs /img rw,user_id=0
            String[] f = line.split(" ");
            int dash = -1;
            for (int i = 6; i < f.length; i++) {
                if (f[i].equals("-")) {
                    dash = i;
                    break;
                }
            }
            if (f.length < 5 || dash < 0 || dash + 2 >= f.length) {
                continue;
            }
            out.add(new Entry(Path.of(unescape(f[4])), f[dash + 1], unescape(f[dash + 2]), f[5]));
        }
        return out;
    }

    /** The topmost mount on {@code mountpoint} (compared as a real path), if any. */
    public static Optional<Entry> at(Path mountpoint) throws IOException {
        Entry found = null;
        for (Entry e : all()) {
            if (e.mountpoint().equals(mountpoint)) {
                found = e; // later lines are mounted on top of earlier ones
            }
        }
        return Optional.ofNullable(found);
    }

    /** Whether {@code e} is a FUSE mount (fuse.SUBTYPE, or fuseblk[.SUBTYPE] for block devices). */
    public static boolean isFuse(Entry e) {
        return e.fstype().startsWith("fuse.") || e.fstype().equals("fuseblk") || e.fstype().startsWith("fuseblk.");
    }

    /**
     * The FUSE mount whose source is {@code image} (as given, absolute, or its real path), if
     * one is mounted now. A mount given another name with {@code fsname=} is not found here; the
     * image lock still keeps a second daemon off it.
     */
    public static Optional<Entry> mountedFrom(Path image) throws IOException {
        Path absolute = image.toAbsolutePath().normalize();
        Path real = Files.exists(image) ? image.toRealPath() : absolute;
        for (Entry e : all()) {
            if (isFuse(e) && (e.source().equals(absolute.toString()) || e.source().equals(real.toString()))) {
                return Optional.of(e);
            }
        }
        return Optional.empty();
    }

    static String unescape(String s) {
        if (s.indexOf('\\') < 0) {
            return s;
        }
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()) {
                try {
                    b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                    i += 3;
                    continue;
                } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
                    // not an escape
                }
            }
            b.append(c);
        }
        return b.toString();
    }

    private static final int MNT_DETACH = 2;
    private static MethodHandle umount2;
    private static MethodHandle geteuid;

    private static synchronized void link() {
        if (umount2 == null) {
            Linker linker = Linker.nativeLinker();
            umount2 = linker.downcallHandle(linker.defaultLookup().find("umount2").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            geteuid = linker.downcallHandle(linker.defaultLookup().find("geteuid").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT));
        }
    }

    public static boolean isRoot() {
        link();
        try {
            return (int) geteuid.invokeExact() == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /**
     * Detaches {@code mountpoint} (lazy unmount, as libfuse's own exit path does): umount2(MNT_DETACH)
     * as root, else {@code fusermount -u -z}. The FUSE session then ends and libfuse's loop returns.
     */
    public static void detach(Path mountpoint) throws IOException {
        link();
        if (isRoot()) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment p = arena.allocateFrom(mountpoint.toString());
                int rc = (int) umount2.invokeExact(p, MNT_DETACH);
                if (rc == 0) {
                    return;
                }
            } catch (Throwable t) {
                // fall back to fusermount
            }
        }
        for (String tool : List.of("fusermount", "fusermount3")) {
            try {
                Process p = new ProcessBuilder(tool, "-u", "-z", mountpoint.toString())
                        .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
                if (p.waitFor() == 0) {
                    return;
                }
            } catch (IOException e) {
                // try the next one
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while unmounting " + mountpoint);
            }
        }
        throw new IOException("cannot unmount " + mountpoint);
    }
}
