package io.coherentfs.it;

/**
 * {@link MountCrashTest} on mounts made with {@code -o transport=libfuse} (libfuse 2 through
 * jnr-fuse, the first transport): the daemon killed with SIGKILL mid-load, the dead mount
 * unmounted and the image mounted again, every fsynced byte present and fsck clean. Fewer
 * rounds than on the default transport: what differs here is only who speaks FUSE.
 */
class LibfuseTransportCrashTest extends MountCrashTest {
    @Override
    int defaultRounds() {
        return 8;
    }

    @Override
    String[] mountOptions() {
        return new String[] {"transport=libfuse"};
    }
}
