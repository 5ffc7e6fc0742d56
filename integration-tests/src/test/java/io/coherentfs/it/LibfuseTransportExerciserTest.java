package io.coherentfs.it;

/**
 * {@link ExerciserTest} on a mount made with {@code -o transport=libfuse} (libfuse 2 through
 * jnr-fuse): 128 KiB requests, synchronous direct IO, and libfuse's own handling of unlinked
 * open files, under the exerciser's buffered/direct/io_uring/mmap mix.
 */
@MountWith(image = "exerciser-libfuse", options = "transport=libfuse")
class LibfuseTransportExerciserTest extends ExerciserTest {
}
