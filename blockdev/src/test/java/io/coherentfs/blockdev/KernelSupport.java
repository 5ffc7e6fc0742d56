package io.coherentfs.blockdev;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** What the running kernel allows, for tests that must not silently test a fallback. */
public final class KernelSupport {
    private KernelSupport() {}

    /** True unless kernel.io_uring_disabled says io_uring is off for us (root counts as allowed at 1). */
    public static boolean ioUringAllowed() {
        Path knob = Path.of("/proc/sys/kernel/io_uring_disabled");
        try {
            String v = Files.exists(knob) ? Files.readString(knob).trim() : "0";
            return v.equals("0") || (v.equals("1") && "root".equals(System.getProperty("user.name")));
        } catch (IOException e) {
            return true;
        }
    }
}
