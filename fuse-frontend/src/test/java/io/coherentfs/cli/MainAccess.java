package io.coherentfs.cli;

/** Test access to Main's package-private argument rewriting. */
public final class MainAccess {
    private MainAccess() {}

    public static String[] mountFuseForm(String... args) {
        return Main.mountFuseForm(args);
    }
}
