package io.coherentfs.core.dir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class DirentCodecTest {

    private static byte[] name(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void entriesRoundTripAndKeysSortByParentThenPosition() {
        long hash = DirentCodec.nameHash(name("hello"));
        byte[] key = DirentCodec.key(5, DirentCodec.position(hash, 3));
        byte[] value = DirentCodec.value(77, 8, name("hello"));
        assertThat(value).hasSize(DirentCodec.VALUE_SIZE);
        DirentCodec.Dirent d = DirentCodec.decode(key, value);
        assertThat(d.parent()).isEqualTo(5);
        assertThat(d.position()).isEqualTo((hash << 15) | 3);
        assertThat(d.child()).isEqualTo(77);
        assertThat(d.type()).isEqualTo(8);
        assertThat(d.nameString()).isEqualTo("hello");
        byte[] otherDir = DirentCodec.key(6, 0);
        assertThat(Arrays.compareUnsigned(key, otherDir)).isNegative();
    }

    @Test
    void hashesAreStable48BitNonZeroAndPositionsClearTheDotCookies() {
        // Part of the on-disk format: these values must never change.
        assertThat(DirentCodec.nameHash(name("a"))).isEqualTo(DirentCodec.nameHash(name("a")));
        assertThat(DirentCodec.nameHash(name("a"))).isNotEqualTo(DirentCodec.nameHash(name("b")));
        for (String s : new String[] {"a", ".x", "file-000001", "ü"}) {
            long h = DirentCodec.nameHash(name(s));
            assertThat(h).isBetween(1L, (1L << 48) - 1);
            assertThat(DirentCodec.position(h, 0)).isGreaterThan(2);
        }
    }

    @Test
    void namesAreCheckedAsLinuxDoes() {
        assertThatThrownBy(() -> DirentCodec.checkName(new byte[256]))
                .isInstanceOf(DirentCodec.NameTooLongException.class);
        assertThatThrownBy(() -> DirentCodec.checkName(name("a/b"))).hasMessageContaining("'/'");
        assertThatThrownBy(() -> DirentCodec.checkName(new byte[] {'a', 0})).hasMessageContaining("NUL");
        assertThatThrownBy(() -> DirentCodec.checkName(new byte[0])).hasMessageContaining("empty");
        byte[] max = new byte[255];
        Arrays.fill(max, (byte) 'x');
        DirentCodec.checkName(max);
        assertThat(DirentCodec.decode(DirentCodec.key(1, 1 << 15), DirentCodec.value(2, 4, max)).name()).isEqualTo(max);
        assertThatThrownBy(() -> DirentCodec.position(1, 1 << 15)).isInstanceOf(IllegalArgumentException.class);
    }
}
