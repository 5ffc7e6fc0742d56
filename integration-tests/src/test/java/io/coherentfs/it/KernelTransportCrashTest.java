package io.coherentfs.it;

/**
 * {@link MountCrashTest} on mounts made with {@code -o transport=kernel}: the daemon killed
 * with SIGKILL mid-load drops its /dev/fuse descriptor, the kernel aborts the connection, and
 * after the dead mount is unmounted and the image mounted again every fsynced byte must be
 * there and fsck clean.
 */
class KernelTransportCrashTest extends MountCrashTest {
    @Override
    String[] mountOptions() {
        return new String[] {"transport=kernel"};
    }
}
