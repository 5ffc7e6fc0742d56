package io.coherentfs.cli;

import picocli.CommandLine.IVersionProvider;

/** Version from the jar manifest, else "development build". */
public final class Version implements IVersionProvider {
    @Override
    public String[] getVersion() {
        String v = Version.class.getPackage().getImplementationVersion();
        return new String[] {"coherentfs " + (v == null ? "development build" : v),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")"};
    }
}
