package io.coherentfs.it;

/**
 * {@link ExerciserTest} on a mount made with {@code -o transport=kernel} (the FUSE protocol on
 * /dev/fuse): there the kernel sends asynchronous and parallel direct IO, keeps cached pages
 * across opens of hard-linked files, and maps O_DIRECT descriptors, so the exerciser's
 * buffered/direct/io_uring/mmap mix meets paths libfuse 2 never takes.
 */
@MountWith(image = "exerciser-kernel", options = "transport=kernel")
class KernelTransportExerciserTest extends ExerciserTest {
}
