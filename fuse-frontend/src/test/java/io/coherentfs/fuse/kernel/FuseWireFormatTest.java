package io.coherentfs.fuse.kernel;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.inode.Timespec;
import io.coherentfs.core.vfs.Attr;
import io.coherentfs.core.vfs.StatFs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The wire format against include/uapi/linux/fuse.h: struct sizes and offsets as the header
 * documents them, encoders writing exactly those bytes, decoders reading them back.
 */
class FuseWireFormatTest {
    private final Arena arena = Arena.ofAuto();

    private static final Attr ATTR = new Attr(42, 7, 0x81a4, 3, 1000, 100, 0x0801, 123_456_789L, 248,
            new Timespec(1_700_000_001L, 11), new Timespec(1_700_000_002L, 22), new Timespec(1_700_000_003L, 33),
            new Timespec(1_700_000_000L, 0));

    @Test
    void structSizesAreTheHeadersForEveryMinorWeSpeak() {
        // fuse.h: fuse_attr 88, fuse_entry_out 128 (FUSE_COMPAT_ENTRY_OUT_SIZE 120 is for < 7.9),
        // fuse_attr_out 104 (compat 96), fuse_init_out 64 since 7.23, fuse_in_header 40, fuse_out_header 16.
        assertThat(FuseAbi.ATTR_BYTES).isEqualTo(88);
        assertThat(FuseAbi.ENTRY_OUT_BYTES).isEqualTo(128);
        assertThat(FuseAbi.ATTR_OUT_BYTES).isEqualTo(104);
        assertThat(FuseAbi.INIT_OUT_BYTES).isEqualTo(64);
        assertThat(FuseAbi.IN_HEADER_BYTES).isEqualTo(40);
        assertThat(FuseAbi.OUT_HEADER_BYTES).isEqualTo(16);
        assertThat(FuseAbi.SETATTR_IN_BYTES).isEqualTo(88);
        assertThat(FuseAbi.STATFS_OUT_BYTES).isEqualTo(80);
        // The O_DIRECT trick depends on this: header + fuse_write_in = 80 bytes before the data.
        assertThat(FuseAbi.WRITE_PAYLOAD_OFFSET).isEqualTo(80);
        assertThat(KernelSession.REQUEST_AT + FuseAbi.WRITE_PAYLOAD_OFFSET).isEqualTo(4096);
        assertThat(KernelSession.READ_LENGTH).isGreaterThanOrEqualTo(
                FuseAbi.WRITE_PAYLOAD_OFFSET + InitNegotiation.MAX_WRITE).isGreaterThanOrEqualTo(FuseAbi.MIN_READ_BUFFER);
    }

    @Test
    void entryOutCarriesNodeGenerationTimeoutsAndAttributes() {
        MemorySegment m = arena.allocate(FuseAbi.ENTRY_OUT_BYTES, 8);
        m.fill((byte) 0x7f);
        FuseStructs.putEntry(m, 0, ATTR, 5, 0);
        assertThat(m.get(JAVA_LONG, 0)).isEqualTo(42);  // nodeid
        assertThat(m.get(JAVA_LONG, 8)).isEqualTo(7);   // generation
        assertThat(m.get(JAVA_LONG, 16)).isEqualTo(5);  // entry_valid
        assertThat(m.get(JAVA_LONG, 24)).isEqualTo(0);  // attr_valid
        assertThat(m.get(JAVA_INT, 32)).isZero();
        assertThat(m.get(JAVA_INT, 36)).isZero();
        long a = 40;
        assertThat(m.get(JAVA_LONG, a)).isEqualTo(42);
        assertThat(m.get(JAVA_LONG, a + 8)).isEqualTo(123_456_789L);
        assertThat(m.get(JAVA_LONG, a + 16)).isEqualTo(248);
        assertThat(m.get(JAVA_LONG, a + 24)).isEqualTo(1_700_000_001L);
        assertThat(m.get(JAVA_LONG, a + 32)).isEqualTo(1_700_000_002L);
        assertThat(m.get(JAVA_LONG, a + 40)).isEqualTo(1_700_000_003L);
        assertThat(m.get(JAVA_INT, a + 48)).isEqualTo(11);
        assertThat(m.get(JAVA_INT, a + 52)).isEqualTo(22);
        assertThat(m.get(JAVA_INT, a + 56)).isEqualTo(33);
        assertThat(m.get(JAVA_INT, a + 60)).isEqualTo(0x81a4);
        assertThat(m.get(JAVA_INT, a + 64)).isEqualTo(3);
        assertThat(m.get(JAVA_INT, a + 68)).isEqualTo(1000);
        assertThat(m.get(JAVA_INT, a + 72)).isEqualTo(100);
        assertThat(m.get(JAVA_INT, a + 76)).isEqualTo(0x0801);
        assertThat(m.get(JAVA_INT, a + 80)).isEqualTo(4096);
        assertThat(m.get(JAVA_INT, a + 84)).isZero();
    }

    @Test
    void negativeEntryIsNodeZeroWithOnlyTheEntryTimeout() {
        MemorySegment m = arena.allocate(FuseAbi.ENTRY_OUT_BYTES, 8);
        m.fill((byte) 0x7f);
        FuseStructs.putEntry(m, 0, null, 5, 0);
        assertThat(m.get(JAVA_LONG, 0)).isZero();
        assertThat(m.get(JAVA_LONG, 16)).isEqualTo(5);
        for (long i = 24; i < FuseAbi.ENTRY_OUT_BYTES; i++) {
            assertThat(m.get(JAVA_BYTE, i)).as("byte %d", i).isZero();
        }
    }

    @Test
    void attrOutAndOpenOutAndStatfs() {
        MemorySegment m = arena.allocate(256, 8);
        FuseStructs.putAttrOut(m, 0, ATTR, 0);
        assertThat(m.get(JAVA_LONG, 0)).isZero();
        assertThat(m.get(JAVA_LONG, 16)).isEqualTo(42);
        assertThat(m.get(JAVA_INT, 16 + 60)).isEqualTo(0x81a4);

        FuseStructs.putOpenOut(m, 0, 0x1234_5678_9abcL, FuseAbi.FOPEN_DIRECT_IO | FuseAbi.FOPEN_PARALLEL_DIRECT_WRITES);
        assertThat(m.get(JAVA_LONG, 0)).isEqualTo(0x1234_5678_9abcL);
        assertThat(m.get(JAVA_INT, 8)).isEqualTo(0x41);

        FuseStructs.putStatfs(m, 0, new StatFs(4096, 1000, 900, 800, 500, 400, 255));
        assertThat(m.get(JAVA_LONG, 0)).isEqualTo(1000);  // blocks
        assertThat(m.get(JAVA_LONG, 8)).isEqualTo(900);   // bfree
        assertThat(m.get(JAVA_LONG, 16)).isEqualTo(800);  // bavail
        assertThat(m.get(JAVA_LONG, 24)).isEqualTo(500);  // files
        assertThat(m.get(JAVA_LONG, 32)).isEqualTo(400);  // ffree
        assertThat(m.get(JAVA_INT, 40)).isEqualTo(4096);  // bsize
        assertThat(m.get(JAVA_INT, 44)).isEqualTo(255);   // namelen
        assertThat(m.get(JAVA_INT, 48)).isEqualTo(4096);  // frsize
    }

    @Test
    void direntsAreEightByteAlignedAndStopWhenFull() {
        MemorySegment m = arena.allocate(64, 8);
        byte[] name = "hello".getBytes(StandardCharsets.UTF_8);
        int n = FuseStructs.putDirent(m, 0, 64, 9, 77, 0x4000, name);
        assertThat(n).isEqualTo(32); // 24 + 5, rounded up to 8
        assertThat(m.get(JAVA_LONG, 0)).isEqualTo(9);
        assertThat(m.get(JAVA_LONG, 8)).isEqualTo(77);
        assertThat(m.get(JAVA_INT, 16)).isEqualTo(5);
        assertThat(m.get(JAVA_INT, 20)).isEqualTo(4); // DT_DIR
        assertThat(m.asSlice(24, 5).toArray(JAVA_BYTE)).isEqualTo(name);
        assertThat(m.asSlice(29, 3).toArray(JAVA_BYTE)).containsOnly(0);
        assertThat(FuseStructs.putDirent(m, 32, 64, 10, 78, 0x8000, "a-name-too-long".getBytes(StandardCharsets.UTF_8)))
                .as("24 + 15 bytes do not fit in the 32 left").isZero();
        assertThat(FuseAbi.direntSize(8)).isEqualTo(32);
        assertThat(FuseAbi.direntSize(9)).isEqualTo(40);
    }

    @Test
    void initTakesWhatWeWantOfWhatIsOfferedAndNeverWritebackCache() {
        MemorySegment in = arena.allocate(FuseAbi.INIT_IN_BYTES_V36, 8);
        in.set(JAVA_INT, 0, 7);
        in.set(JAVA_INT, 4, 44);
        in.set(JAVA_INT, 8, 131072);
        in.set(JAVA_INT, 12, 0xffff_ffff); // everything, WRITEBACK_CACHE and EXPORT_SUPPORT included
        in.set(JAVA_INT, 16, 0xffff_ffff);
        InitNegotiation n = InitNegotiation.decide(in);
        assertThat(n.error()).isZero();
        assertThat(n.minor()).isEqualTo(FuseAbi.OUR_MINOR);
        assertThat(n.has(FuseAbi.WRITEBACK_CACHE)).isFalse();
        assertThat(n.has(FuseAbi.EXPORT_SUPPORT)).isFalse();
        assertThat(n.has(FuseAbi.SETXATTR_EXT)).isFalse();
        assertThat(n.has(FuseAbi.ATOMIC_O_TRUNC)).isFalse();
        assertThat(n.has(FuseAbi.ASYNC_DIO)).isTrue();
        assertThat(n.has(FuseAbi.MAX_PAGES)).isTrue();
        assertThat(n.has(FuseAbi.DIRECT_IO_ALLOW_MMAP)).isTrue();

        MemorySegment out = arena.allocate(FuseAbi.INIT_OUT_BYTES, 8);
        out.fill((byte) 0x55);
        assertThat(n.encode(out)).isEqualTo(64);
        assertThat(out.get(JAVA_INT, 0)).isEqualTo(7);
        assertThat(out.get(JAVA_INT, 4)).isEqualTo(FuseAbi.OUR_MINOR);
        assertThat(out.get(JAVA_INT, 8)).isEqualTo(131072);
        assertThat(Integer.toUnsignedLong(out.get(JAVA_INT, 12))).isEqualTo(n.flags() & 0xffff_ffffL);
        assertThat(out.get(JAVA_SHORT, 16)).isEqualTo((short) InitNegotiation.MAX_BACKGROUND);
        assertThat(out.get(JAVA_INT, 20)).isEqualTo(1 << 20);
        assertThat(out.get(JAVA_INT, 24)).isEqualTo(1);   // time_gran: nanoseconds
        assertThat(out.get(JAVA_SHORT, 28)).isEqualTo((short) 256);
        assertThat(out.get(JAVA_INT, 32)).isEqualTo((int) (n.flags() >>> 32));
        assertThat(out.asSlice(36, 28).toArray(JAVA_BYTE)).containsOnly(0);
    }

    @Test
    void initBeforeInitExtIgnoresFlags2AndOldKernelsAreRefused() {
        MemorySegment in = arena.allocate(16, 8);
        in.set(JAVA_INT, 0, 7);
        in.set(JAVA_INT, 4, 34);
        in.set(JAVA_INT, 12, (int) (FuseAbi.ASYNC_DIO | FuseAbi.BIG_WRITES));
        InitNegotiation n = InitNegotiation.decide(in);
        assertThat(n.minor()).isEqualTo(34);
        assertThat(n.flags()).isEqualTo(FuseAbi.ASYNC_DIO | FuseAbi.BIG_WRITES);

        in.set(JAVA_INT, 4, 26);
        assertThat(InitNegotiation.decide(in).error()).isEqualTo(InitNegotiation.EPROTO);

        in.set(JAVA_INT, 0, 8); // a future major: answer 7 and wait for the kernel's next INIT
        InitNegotiation v = InitNegotiation.decide(in);
        assertThat(v.versionOnly()).isTrue();
        assertThat(v.major()).isEqualTo(7);
    }

    @Test
    void requestHeaderAndNamesRoundTrip() throws ErrnoException {
        MemorySegment m = arena.allocate(128, 8);
        byte[] names = "old\0new\0".getBytes(StandardCharsets.UTF_8);
        int len = FuseAbi.IN_HEADER_BYTES + FuseAbi.RENAME2_IN_BYTES + names.length;
        m.set(JAVA_INT, 0, len);
        m.set(JAVA_INT, 4, FuseAbi.RENAME2);
        m.set(JAVA_LONG, 8, 0xabcdefL);
        m.set(JAVA_LONG, 16, 5);
        m.set(JAVA_INT, 24, 1000);
        m.set(JAVA_INT, 28, 100);
        m.set(JAVA_INT, 32, 4321);
        m.set(JAVA_LONG, 40, 6); // newdir
        m.set(JAVA_INT, 48, FuseAbi.RENAME_EXCHANGE);
        MemorySegment.copy(names, 0, m, JAVA_BYTE, 56, names.length);
        FuseRequest r = FuseRequest.parse(m, len);
        assertThat(r.opcode()).isEqualTo(FuseAbi.RENAME2);
        assertThat(r.unique()).isEqualTo(0xabcdefL);
        assertThat(r.nodeid()).isEqualTo(5);
        assertThat(r.uid()).isEqualTo(1000);
        assertThat(r.gid()).isEqualTo(100);
        assertThat(r.pid()).isEqualTo(4321);
        MemorySegment body = r.body(FuseAbi.RENAME2_IN_BYTES);
        assertThat(body.byteSize()).isEqualTo(FuseAbi.RENAME2_IN_BYTES + names.length);
        byte[] first = FuseRequest.string(body, FuseAbi.RENAME2_IN_BYTES);
        assertThat(new String(first, StandardCharsets.UTF_8)).isEqualTo("old");
        assertThat(new String(FuseRequest.string(body, FuseAbi.RENAME2_IN_BYTES + first.length + 1),
                StandardCharsets.UTF_8)).isEqualTo("new");

        assertThatThrownBy(() -> FuseRequest.parse(m, len - 1)).isInstanceOf(ErrnoException.class);
        MemorySegment unterminated = arena.allocate(3).copyFrom(MemorySegment.ofArray(new byte[] {'a', 'b', 'c'}));
        assertThatThrownBy(() -> FuseRequest.string(unterminated, 0)).isInstanceOf(ErrnoException.class);
    }

    @Test
    void mountDataAndFlagsAreLibfusesDefaults() {
        KernelMount plain = KernelMount.of("/img", "/mnt", "coherentfs", false, 4096,
                List.of("default_permissions", "allow_other"), LinuxSyscalls.MS_RELATIME, 0, 0);
        assertThat(plain.type()).isEqualTo("fuse.coherentfs");
        assertThat(plain.flags()).isEqualTo(LinuxSyscalls.MS_RELATIME | LinuxSyscalls.MS_NOSUID | LinuxSyscalls.MS_NODEV);
        assertThat(plain.dataFor(5)).isEqualTo("fd=5,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other");

        KernelMount blk = KernelMount.of("/dev/loop0", "/mnt", "coherentfs", true, 4096,
                List.of("suid", "dev", "allow_root"), LinuxSyscalls.MS_RDONLY, 1000, 1000);
        assertThat(blk.type()).isEqualTo("fuseblk.coherentfs");
        assertThat(blk.flags()).isEqualTo(LinuxSyscalls.MS_RDONLY);
        assertThat(blk.dataFor(3)).isEqualTo("fd=3,rootmode=40000,user_id=1000,group_id=1000,allow_other,blksize=4096");
    }
}
