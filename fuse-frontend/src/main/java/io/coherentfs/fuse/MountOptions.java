package io.coherentfs.fuse;

import io.coherentfs.blockdev.ImageFiles;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.sync.CoherenceConfig;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The {@code -o} options of {@code coherentfs mount}, as a user, mount(8) or mount.fuse gives
 * them. Every option is either ours (given to the engine), a FUSE or kernel option (given to
 * libfuse), or one of the harmless options mount(8)/fstab carry along (ignored); anything else is
 * an {@link IllegalArgumentException} naming the option, so that a typo never mounts silently
 * with defaults.
 *
 * @param readOnly    {@code ro} (the engine opens the device read-only; the kernel mount is ro)
 * @param cacheBytes  {@code cache_size=SIZE}, the engine's page-cache budget
 * @param metrics     {@code metrics=HOST:PORT}, a loopback address to serve Prometheus text on, or null
 * @param fsname      {@code fsname=}: the mount's source as /proc/mounts shows it (default: the image path)
 * @param subtype     {@code subtype=}: the mount type is {@code fuse.SUBTYPE} (default coherentfs)
 * @param logFile     {@code log=FILE}: where the daemon logs (default: see {@link Daemon#defaultLog})
 * @param fuseOptions options passed to libfuse as they are (ro, nosuid, allow_other, ...)
 * @param remount     {@code remount}: change a live mount's flags (ro/rw, nosuid, ...) instead of mounting
 * @param fuseblk     {@code fuseblk} / {@code nofuseblk}: mount a block device as the kernel's
 *                    fuseblk type (the kernel claims the device and {@code umount} waits for
 *                    the daemon) or as plain fuse; null: fuseblk for block devices, fuse for files
 * @param transport   {@code transport=kernel|libfuse}: who speaks the FUSE protocol — coherentfs
 *                    itself on /dev/fuse ({@link io.coherentfs.fuse.kernel.KernelSession}, the
 *                    default), or libfuse 2 through jnr-fuse
 * @param threads     {@code threads=N}: request threads of the kernel transport (default 16)
 * @param kernelStoreGate false with {@code unsafe_no_kernel_store_gate} (race tests only): the
 *                    kernel transport's read-around stores into the kernel's page cache without
 *                    waiting out writers ({@link io.coherentfs.fuse.kernel.KernelSession#storeGate})
 * @param directWriteInvalidation false with {@code unsafe_no_direct_write_invalidation} (race
 *                    tests only): the kernel transport answers a direct write without first
 *                    telling the kernel to drop its cached pages of the range
 */
public record MountOptions(boolean readOnly, long cacheBytes, InetSocketAddress metrics, CoherenceConfig coherence,
        CoherentFs.Atime atime, String fsname, String subtype, Path logFile, boolean debug,
        List<String> fuseOptions, boolean remount, Boolean fuseblk, Transport transport, int threads,
        boolean kernelStoreGate, boolean directWriteInvalidation) {

    /** The frontend's own coherence switch; the engine's are {@link CoherenceConfig}'s. */
    public static final String UNSAFE_NO_KERNEL_STORE_GATE = "unsafe_no_kernel_store_gate";
    public static final String UNSAFE_NO_DIRECT_WRITE_INVALIDATION = "unsafe_no_direct_write_invalidation";

    /** Who speaks the FUSE protocol. */
    public enum Transport {
        /** libfuse 2 through jnr-fuse: 128 KiB requests, no async direct IO. */
        LIBFUSE,
        /** coherentfs on /dev/fuse (transport 2): 1 MiB requests, async and parallel direct IO. */
        KERNEL
    }

    public static final int DEFAULT_THREADS = io.coherentfs.fuse.kernel.KernelSession.DEFAULT_THREADS;

    /** Kernel and libfuse options passed through unchanged. */
    private static final Set<String> PASSED = Set.of("dev", "nodev", "suid", "nosuid", "exec", "noexec", "sync",
            "async", "dirsync", "allow_other", "allow_root", "default_permissions", "nonempty", "auto_unmount");

    /** What mount(8), fstab and mount.fuse carry along that means nothing to a FUSE daemon. */
    private static final Set<String> IGNORED = Set.of("defaults", "_netdev", "auto", "noauto", "user", "nouser",
            "users", "owner", "group", "nofail", "loop", "diratime", "nodiratime", "lazytime", "nolazytime",
            "iversion", "noiversion", "mand", "nomand", "nosymfollow", "symfollow", "silent", "loud");

    public static MountOptions parse(List<String> optionStrings) {
        boolean ro = false;
        long cache = CoherentFs.Options.DEFAULT_CACHE_BYTES;
        InetSocketAddress metrics = null;
        CoherentFs.Atime atime = CoherentFs.Atime.RELATIME;
        String fsname = null;
        String subtype = "coherentfs";
        Path log = null;
        boolean debug = false;
        boolean remount = false;
        Boolean fuseblk = null;
        Transport transport = Transport.KERNEL;
        int threads = DEFAULT_THREADS;
        boolean kernelStoreGate = true;
        boolean directWriteInvalidation = true;
        List<String> unsafe = new ArrayList<>();
        List<String> fuse = new ArrayList<>();
        for (String group : optionStrings) {
            for (String raw : group.split(",")) {
                String o = raw.strip();
                if (o.isEmpty()) {
                    continue;
                }
                int eq = o.indexOf('=');
                String key = eq < 0 ? o : o.substring(0, eq);
                String value = eq < 0 ? null : o.substring(eq + 1);
                switch (key) {
                    case "ro" -> ro = true;
                    case "rw" -> ro = false;
                    case "cache_size" -> cache = size(o, value);
                    case "metrics" -> metrics = loopback(o, value);
                    case "relatime" -> atime = CoherentFs.Atime.RELATIME;
                    case "noatime" -> atime = CoherentFs.Atime.NOATIME;
                    case "strictatime", "atime" -> atime = CoherentFs.Atime.STRICTATIME;
                    case "norelatime" -> atime = CoherentFs.Atime.STRICTATIME;
                    case "fsname" -> fsname = required(o, value);
                    case "subtype" -> subtype = required(o, value);
                    case "log" -> log = Path.of(required(o, value)).toAbsolutePath();
                    case "debug" -> debug = true;
                    case "remount" -> remount = true;
                    // The kernel's own FUSE options, which libfuse sets; mount(8) reads them back from
                    // mountinfo and hands them to us again on a remount.
                    case "user_id", "group_id", "rootmode", "blksize", "max_read", "fd" -> { }
                    case "fuseblk" -> fuseblk = true;
                    case "nofuseblk" -> fuseblk = false;
                    case "transport" -> transport = switch (required(o, value)) {
                        case "libfuse" -> Transport.LIBFUSE;
                        case "kernel" -> Transport.KERNEL;
                        default -> throw new IllegalArgumentException("mount option '" + o
                                + "': transport is libfuse or kernel");
                    };
                    case "threads" -> threads = threads(o, value);
                    case UNSAFE_NO_KERNEL_STORE_GATE -> kernelStoreGate = false;
                    case UNSAFE_NO_DIRECT_WRITE_INVALIDATION -> directWriteInvalidation = false;
                    case "comment", "x-systemd.automount", "x-systemd.requires", "x-systemd.device-timeout",
                            "x-systemd.mount-timeout", "x-systemd.after", "x-systemd.before",
                            "x-systemd.idle-timeout", "x-systemd.wanted-by", "x-systemd.required-by",
                            "x-initrd.mount" -> { }
                    default -> {
                        if (key.startsWith(CoherenceConfig.UNSAFE_PREFIX) && value == null) {
                            unsafe.add(o);
                        } else if (value == null && PASSED.contains(key)) {
                            fuse.add(key);
                        } else if (value == null && IGNORED.contains(key)) {
                            // harmless: mount(8) and fstab vocabulary
                        } else if (key.startsWith("x-")) {
                            // fstab comments for other programs (x-gvfs-show, ...), by convention ignored
                        } else {
                            throw new IllegalArgumentException("unknown mount option '" + o + "'");
                        }
                    }
                }
            }
        }
        CoherenceConfig coherence = CoherenceConfig.fromOptions(unsafe);
        if (ro) {
            fuse.add("ro");
        }
        if (atime == CoherentFs.Atime.NOATIME) {
            fuse.add("noatime"); // shown in /proc/mounts; the engine is what skips the updates
        }
        if (subtype.isEmpty() || !subtype.matches("[A-Za-z0-9_.-]+")) {
            throw new IllegalArgumentException("bad subtype '" + subtype + "'");
        }
        return new MountOptions(ro, cache, metrics, coherence, atime, fsname, subtype, log, debug, List.copyOf(fuse),
                remount, fuseblk, transport, threads, kernelStoreGate, directWriteInvalidation);
    }

    private static int threads(String option, String value) {
        try {
            int n = Integer.parseInt(required(option, value));
            if (n >= 1 && n <= 256) {
                return n;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new IllegalArgumentException("mount option '" + option + "': threads is 1 to 256");
    }

    private static String required(String option, String value) {
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("mount option '" + option + "' needs a value");
        }
        return value;
    }

    private static long size(String option, String value) {
        long bytes;
        try {
            bytes = ImageFiles.parseSize(required(option, value));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad size in mount option '" + option + "'");
        }
        if (bytes < 64 * 4096) {
            throw new IllegalArgumentException("mount option '" + option + "': cache_size must be at least 256k");
        }
        return bytes;
    }

    private static InetSocketAddress loopback(String option, String value) {
        String v = required(option, value);
        int colon = v.lastIndexOf(':');
        if (colon <= 0 || colon == v.length() - 1) {
            throw new IllegalArgumentException("mount option '" + option + "' must be metrics=HOST:PORT");
        }
        String host = v.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(v.substring(colon + 1));
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("mount option '" + option + "': bad port");
        }
        InetAddress address;
        try {
            address = InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("mount option '" + option + "': unknown host '" + host + "'");
        }
        if (!address.isLoopbackAddress()) {
            throw new IllegalArgumentException("mount option '" + option
                    + "': the metrics endpoint serves on loopback addresses only (127.0.0.1, ::1, localhost)");
        }
        return new InetSocketAddress(address, port);
    }

    /** The MS_* flags of mount(2) these options ask for (what a remount sets). */
    public long kernelFlags() {
        long flags = 0;
        if (readOnly) {
            flags |= LinuxSyscalls.MS_RDONLY;
        }
        for (String o : fuseOptions) {
            flags |= switch (o) {
                case "nosuid" -> LinuxSyscalls.MS_NOSUID;
                case "nodev" -> LinuxSyscalls.MS_NODEV;
                case "noexec" -> LinuxSyscalls.MS_NOEXEC;
                case "sync" -> LinuxSyscalls.MS_SYNCHRONOUS;
                case "dirsync" -> LinuxSyscalls.MS_DIRSYNC;
                default -> 0L;
            };
        }
        flags |= switch (atime) {
            case NOATIME -> LinuxSyscalls.MS_NOATIME;
            case RELATIME -> LinuxSyscalls.MS_RELATIME;
            case STRICTATIME -> LinuxSyscalls.MS_STRICTATIME;
        };
        return flags;
    }

    /** The engine's options for these mount options, with {@code registry} for its meters. */
    public CoherentFs.Options engineOptions(io.micrometer.core.instrument.MeterRegistry registry) {
        return CoherentFs.Options.DEFAULT.withReadOnly(readOnly).withAtime(atime).withCacheBytes(cacheBytes)
                .withCoherence(coherence).withMetrics(registry);
    }
}
