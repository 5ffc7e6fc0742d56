package io.coherentfs.core.inode;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class InodeRecordTest {

    @Test
    void everyFieldSurvivesEncodeDecodeIncludingTimesBefore1970AndAfter2038() {
        InodeRecord r = new InodeRecord(InodeRecord.S_IFLNK | 0777, 1000, 100, 1, 11, 0,
                new Timespec(-86_400L * 365 * 60, 1), new Timespec(4_102_444_800L, 999_999_999),
                new Timespec(0, 0), new Timespec(1_700_000_000L, 123), 42, InodeRecord.FLAG_ORPHAN, 0, 0, 0,
                "target/file".getBytes(StandardCharsets.UTF_8));
        byte[] stored = r.encode();
        assertThat(stored).hasSize(InodeRecord.SIZE);
        InodeRecord back = InodeRecord.decode(stored, 7);
        assertThat(back).isEqualTo(r);
        assertThat(back.isSymlink()).isTrue();
        assertThat(back.atime().seconds()).isNegative();
        assertThat(back.mtime()).isEqualTo(new Timespec(4_102_444_800L, 999_999_999));
        assertThat(new String(back.inline(), StandardCharsets.UTF_8)).isEqualTo("target/file");
    }

    @Test
    void inlineDataIsBounded() {
        assertThatThrownBy(() -> new InodeRecord(InodeRecord.S_IFLNK, 0, 0, 1, 0, 0, Timespec.EPOCH, Timespec.EPOCH,
                Timespec.EPOCH, Timespec.EPOCH, 0, 0, 0, 0, 0, new byte[InodeRecord.INLINE_CAPACITY + 1]))
                .isInstanceOf(IllegalArgumentException.class);
        byte[] bad = new InodeRecord(InodeRecord.S_IFREG, 0, 0, 1, 0, 0, Timespec.EPOCH, Timespec.EPOCH,
                Timespec.EPOCH, Timespec.EPOCH, 0, 0, 0, 0, 5, null).encode();
        bad[92] = (byte) 200;
        assertThatThrownBy(() -> InodeRecord.decode(bad, 9)).hasMessageContaining("inode 9");
    }
}
