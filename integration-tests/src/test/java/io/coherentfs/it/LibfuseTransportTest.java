package io.coherentfs.it;

/**
 * Every test of {@link MountedFilesystemTest} (POSIX namespace operations, xattrs, shared mmap,
 * buffered/direct coherence both ways, fio with libaio at iodepth 16 and verify=crc32c, fsck
 * after unmount) on a mount made with {@code -o transport=libfuse}, the first transport (libfuse
 * 2 through jnr-fuse); the default transport is {@link KernelTransportTest}'s.
 */
@MountWith(image = "posix-libfuse", options = "transport=libfuse")
class LibfuseTransportTest extends MountedFilesystemTest {
}
