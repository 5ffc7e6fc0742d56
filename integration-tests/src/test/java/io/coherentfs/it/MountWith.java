package io.coherentfs.it;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Runs a test class that shares one mount (MountedFilesystemTest, ExerciserTest) on a mount of
 * its own with extra options: a subclass annotated {@code @MountWith(image = "x", options =
 * "transport=kernel")} repeats every test of its base class on such a mount. The base class's
 * {@code @BeforeAll} reads it from the class JUnit runs ({@code TestInfo.getTestClass()}, see
 * {@link MountedImage#forTestClass}).
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
@interface MountWith {
    /** The image's name under target/it-mounts (distinct from the base class's). */
    String image();

    /** Extra mount options. */
    String[] options();
}
