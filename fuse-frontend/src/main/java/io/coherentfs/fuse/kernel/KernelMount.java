package io.coherentfs.fuse.kernel;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.util.ArrayList;
import java.util.List;

/**
 * What mount(2) gets for a FUSE mount, decided as libfuse's lib/mount.c decides it: the type is
 * {@code fuse.SUBTYPE}, or {@code fuseblk.SUBTYPE} for a block device the kernel opens itself
 * (its source must then be the device path); the MS_* flags start from MS_NOSUID|MS_NODEV unless
 * {@code suid} / {@code dev} are given; the data string carries the kernel's own options
 * (fs/fuse/inode.c fuse_parse_param): {@code fd}, {@code rootmode}, {@code user_id},
 * {@code group_id}, and optionally {@code default_permissions}, {@code allow_other} and
 * {@code blksize} (fuseblk only). No {@code max_read}: reads are bounded by max_pages from INIT.
 *
 * @param source the mount's source as /proc/mounts shows it (the image, the device, or fsname=)
 * @param type   fuse.SUBTYPE or fuseblk.SUBTYPE
 * @param flags  MS_* flags
 * @param data   the option string, without the {@code fd=} that {@link #mount} prepends
 */
public record KernelMount(String source, String target, String type, long flags, String data) {
    /** S_IFDIR in octal, as the kernel parses {@code rootmode=}. */
    static final String ROOTMODE = "40000";

    /**
     * @param options the FUSE and VFS options given (nosuid, dev, allow_other, default_permissions, ...)
     * @param msFlags the MS_* flags the options ask for ({@code MountOptions.kernelFlags()})
     */
    public static KernelMount of(String source, String target, String subtype, boolean fuseblk, int blockSize,
            List<String> options, long msFlags, int uid, int gid) {
        long flags = msFlags;
        if (!options.contains("suid")) {
            flags |= LinuxSyscalls.MS_NOSUID;
        }
        if (!options.contains("dev")) {
            flags |= LinuxSyscalls.MS_NODEV;
        }
        List<String> data = new ArrayList<>();
        data.add("rootmode=" + ROOTMODE);
        data.add("user_id=" + Integer.toUnsignedString(uid));
        data.add("group_id=" + Integer.toUnsignedString(gid));
        if (options.contains("default_permissions")) {
            data.add("default_permissions");
        }
        // The kernel has no allow_root: libfuse mounts allow_other and refuses other users itself.
        if (options.contains("allow_other") || options.contains("allow_root")) {
            data.add("allow_other");
        }
        if (fuseblk) {
            data.add("blksize=" + blockSize);
        }
        String type = (fuseblk ? "fuseblk." : "fuse.") + subtype;
        return new KernelMount(source, target, type, flags, String.join(",", data));
    }

    /** The data string for the connection on {@code fd}. */
    public String dataFor(int fd) {
        return "fd=" + fd + "," + data;
    }

    /** mount(2) on the open connection; the kernel sends FUSE_INIT on it next. */
    public void mount(FuseChannel channel) throws ErrnoException {
        LinuxSyscalls.mount(source, target, type, flags, dataFor(channel.fd()));
    }
}
