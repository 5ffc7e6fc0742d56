package io.coherentfs.blockdev;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.error.ErrnoException.MisalignedIoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Helpers for vectored requests: a list of segments laid end to end on the device, from one
 * offset. Stateless; the lists it returns are fresh and share the callers' memory (slices, never
 * copies).
 */
public final class IoVectors {
    /** The most segments one vectored request may carry: Linux's IOV_MAX (UIO_MAXIOV). */
    public static final int IOV_MAX = LinuxSyscalls.IOV_MAX;

    private IoVectors() {}

    /** The bytes the segments cover together. */
    public static long totalLength(List<MemorySegment> segments) {
        long total = 0;
        for (MemorySegment s : segments) {
            total += s.byteSize();
        }
        return total;
    }

    /**
     * Checks a vectored request's shape against {@code geometry}: 1 to {@link #IOV_MAX} segments,
     * an aligned offset, each segment native with an aligned address and a non-zero aligned
     * length, at most 2 GiB together. Returns the failure (null if none) so that asynchronous
     * paths can hand it to their callback. Does not check the range against the device's size.
     */
    public static ErrnoException checkShape(String call, long offset, List<MemorySegment> segments,
            DeviceGeometry geometry) {
        int n = segments.size();
        if (n == 0) {
            return new ErrnoException.InvalidArgumentException(call, "a vectored request needs at least one segment");
        }
        if (n > IOV_MAX) {
            return new ErrnoException.InvalidArgumentException(call,
                    n + " segments, at most " + IOV_MAX + " (IOV_MAX) fit in one request");
        }
        int align = geometry.dioOffsetAlign();
        int memAlign = geometry.dioMemoryAlign();
        if (offset < 0) {
            return new ErrnoException.InvalidArgumentException(call, "negative offset " + offset);
        }
        if (offset % align != 0) {
            return new MisalignedIoException(call, "offset", offset, align);
        }
        long total = 0;
        for (int i = 0; i < n; i++) {
            MemorySegment s = segments.get(i);
            if (!s.isNative()) {
                return new ErrnoException.InvalidArgumentException(call,
                        "segment " + i + ": direct IO needs native memory, not a heap segment");
            }
            long length = s.byteSize();
            if (length == 0 || length % align != 0) {
                return new MisalignedIoException(call, "segment " + i + " length", length, align);
            }
            if (s.address() % memAlign != 0) {
                return new MisalignedIoException(call, "segment " + i + " buffer address", s.address(), memAlign);
            }
            total += length;
            if (total > Integer.MAX_VALUE) {
                return new ErrnoException.InvalidArgumentException(call,
                        "length " + total + "+ exceeds 2 GiB per request");
            }
        }
        return null;
    }

    /**
     * What is left of {@code segments} after their first {@code bytes}: the segments not yet
     * reached, the one {@code bytes} falls inside sliced. Continues a short transfer.
     */
    public static List<MemorySegment> skip(List<MemorySegment> segments, long bytes) {
        List<MemorySegment> rest = new ArrayList<>(segments.size());
        long left = bytes;
        for (MemorySegment s : segments) {
            if (left >= s.byteSize()) {
                left -= s.byteSize();
            } else {
                rest.add(left == 0 ? s : s.asSlice(left));
                left = 0;
            }
        }
        return rest;
    }

    /**
     * The first {@code bytes} of {@code segments} (all of them if they hold fewer): the segments
     * wholly inside, the one the cut falls in sliced. Empty when {@code bytes} is 0.
     */
    public static List<MemorySegment> prefix(List<MemorySegment> segments, long bytes) {
        List<MemorySegment> head = new ArrayList<>();
        long left = bytes;
        for (MemorySegment s : segments) {
            if (left == 0) {
                break;
            }
            long take = Math.min(left, s.byteSize());
            head.add(take == s.byteSize() ? s : s.asSlice(0, take));
            left -= take;
        }
        return head;
    }
}
