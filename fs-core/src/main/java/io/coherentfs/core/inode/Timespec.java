package io.coherentfs.core.inode;

import java.time.Instant;

/**
 * A timestamp as Linux keeps it: seconds since the epoch (signed, so before 1970 and past 2038
 * both work) and nanoseconds in [0, 1e9).
 */
public record Timespec(long seconds, int nanos) implements Comparable<Timespec> {
    public static final Timespec EPOCH = new Timespec(0, 0);

    public Timespec {
        if (nanos < 0 || nanos >= 1_000_000_000) {
            throw new IllegalArgumentException("nanoseconds out of range: " + nanos);
        }
    }

    public static Timespec now() {
        Instant i = Instant.now();
        return new Timespec(i.getEpochSecond(), i.getNano());
    }

    public static Timespec of(Instant i) {
        return new Timespec(i.getEpochSecond(), i.getNano());
    }

    public Instant toInstant() {
        return Instant.ofEpochSecond(seconds, nanos);
    }

    @Override
    public int compareTo(Timespec o) {
        int c = Long.compare(seconds, o.seconds);
        return c != 0 ? c : Integer.compare(nanos, o.nanos);
    }
}
