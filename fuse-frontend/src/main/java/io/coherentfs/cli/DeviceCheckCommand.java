package io.coherentfs.cli;

import io.coherentfs.blockdev.AlignedBuffer;
import io.coherentfs.blockdev.AlignedBufferPool;
import io.coherentfs.blockdev.DeviceGeometry;
import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.engine.IoEngineKind;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code coherentfs device-check IMAGE|DEVICE}: opens the target the way the filesystem will,
 * prints what it found and proves an O_DIRECT write/read round trip — without changing the
 * target: every block it writes is read first and put back (and flushed) afterwards.
 */
@Command(name = "device-check", mixinStandardHelpOptions = true,
        description = "Show a device's geometry, direct-IO alignment and IO engine, and prove an O_DIRECT round trip.")
public final class DeviceCheckCommand implements Callable<Integer> {
    private static final int PROBE = 64 * 1024;

    @Parameters(paramLabel = "IMAGE|DEVICE", description = "An image file or a block device.")
    Path target;

    @Option(names = "--engine", defaultValue = "auto", description = "auto, io_uring or thread-pool (default: ${DEFAULT-VALUE}).")
    String engine;

    @Option(names = "--read-only", description = "Open read-only and only read.")
    boolean readOnly;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException, Exception {
        PrintWriter out = spec.commandLine().getOut();
        DirectDevice.Options options = DirectDevice.Options.DEFAULT
                .withReadOnly(readOnly).withEngine(IoEngineKind.parse(engine));
        try (DirectDevice device = DirectDevice.open(target, options);
                AlignedBufferPool pool = new AlignedBufferPool()) {
            DeviceGeometry g = device.geometry();
            out.printf("device:          %s%n", g.path());
            out.printf("kind:            %s%n", g.blockDevice() ? "block device (opened O_EXCL)" : "regular image file");
            out.printf("size:            %d bytes (%s)%n", g.size(), Sizes.human(g.size()));
            out.printf("DIO alignment:   offset/length %d, memory %d (from %s)%n",
                    g.dioOffsetAlign(), g.dioMemoryAlign(), g.alignmentSource());
            out.printf("physical block:  %d%n", g.physicalBlockSize());
            out.printf("IO engine:       %s%n", device.engineName());
            out.printf("O_DIRECT:        %s%n", oDirectState(device.fd()));
            long[] offsets = {0, alignDown(g.size() / 2, g.dioOffsetAlign()), g.size() - PROBE};
            try (AlignedBuffer saved = pool.allocate(PROBE);
                    AlignedBuffer pattern = pool.allocate(PROBE);
                    AlignedBuffer back = pool.allocate(PROBE)) {
                for (long offset : offsets) {
                    device.read(offset, saved.segment());
                    if (readOnly) {
                        continue;
                    }
                    fillPattern(pattern.segment(), offset);
                    try {
                        device.write(offset, pattern.segment());
                        device.read(offset, back.segment());
                        expectSame(back.segment(), pattern.segment(), "synchronous", offset);
                        back.segment().fill((byte) 0);
                        device.readAsync(offset, back.segment()).get(60, TimeUnit.SECONDS);
                        expectSame(back.segment(), pattern.segment(), "asynchronous", offset);
                    } finally {
                        device.writeAsync(offset, saved.segment()).get(60, TimeUnit.SECONDS);
                    }
                }
                device.flush();
            }
            out.printf("round trip:      %s%n", readOnly
                    ? "read " + offsets.length + " x 64 KiB (read-only: nothing written)"
                    : "wrote, read back (sync and " + device.engineName() + ") and restored "
                            + offsets.length + " x 64 KiB: OK");
        }
        return 0;
    }

    private static long alignDown(long v, int align) {
        return v - v % align;
    }

    private static String oDirectState(int fd) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd))) {
            if (line.startsWith("flags:")) {
                String octal = line.substring(6).trim();
                boolean on = (Integer.parseInt(octal, 8) & 040000) != 0;
                return (on ? "in effect" : "NOT in effect") + " (fd flags " + octal + ")";
            }
        }
        return "unknown (no flags in /proc/self/fdinfo)";
    }

    private static void fillPattern(MemorySegment seg, long seed) {
        long x = seed * 0x9E3779B97F4A7C15L + 1;
        for (long i = 0; i < seg.byteSize(); i += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            seg.set(ValueLayout.JAVA_LONG_UNALIGNED, i, x);
        }
    }

    private static void expectSame(MemorySegment actual, MemorySegment expected, String how, long offset)
            throws IOException {
        long at = actual.mismatch(expected);
        if (at >= 0) {
            throw new IOException(how + " read-back differs from what was written at byte " + (offset + at));
        }
    }
}
