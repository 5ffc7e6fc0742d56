package io.coherentfs.core.sync;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.core.sync.CoherenceConfig.Switch;
import java.util.EnumSet;
import java.util.List;
import org.junit.jupiter.api.Test;

class CoherenceConfigTest {

    @Test
    void everythingIsOnByDefault() {
        var c = CoherenceConfig.DEFAULTS;
        assertThat(c.deferredCompletion()).isTrue();
        assertThat(c.postWriteInvalidation()).isTrue();
        assertThat(c.pagecacheAddLock()).isTrue();
        assertThat(c.delallocPunchKeepsDirty()).isTrue();
        assertThat(c.sizeBeforeInvalidation()).isTrue();
        assertThat(c.invalidationKeepsDirty()).isTrue();
        assertThat(c.off()).isEmpty();
        assertThat(c).hasToString("CoherenceConfig[all on]");
        assertThat(CoherenceConfig.parse("")).isEqualTo(c);
        assertThat(CoherenceConfig.parse("rw,noatime,big_writes")).isEqualTo(c);
    }

    @Test
    void eachOptionTurnsOffExactlyItsSwitch() {
        for (Switch s : Switch.values()) {
            var c = CoherenceConfig.parse("rw," + s.offOption());
            assertThat(c.off()).containsExactly(s);
            assertThat(c.toString()).contains(s.mechanism()).contains(s.offOption());
        }
        assertThat(CoherenceConfig.parse("unsafe_no_pagecache_add_lock").pagecacheAddLock()).isFalse();
        assertThat(CoherenceConfig.parse("unsafe_no_isize_before_invalidation").sizeBeforeInvalidation()).isFalse();
    }

    @Test
    void severalOptionsAndWhitespace() {
        var c = CoherenceConfig.fromOptions(List.of(" unsafe_no_deferred_completion", "ro",
                "unsafe_no_invalidation_keeps_dirty ", "unsafe_no_deferred_completion"));
        assertThat(c.off()).isEqualTo(EnumSet.of(Switch.DEFERRED_COMPLETION, Switch.INVALIDATION_KEEPS_DIRTY));
        assertThat(c).hasToString("CoherenceConfig[off: M1 deferredCompletion (unsafe_no_deferred_completion), "
                + "M6 invalidationKeepsDirty (unsafe_no_invalidation_keeps_dirty)]");
        assertThat(CoherenceConfig.withOff(c.off())).isEqualTo(c);
    }

    @Test
    void unknownUnsafeOptionsAreRejectedWithTheKnownNames() {
        assertThatThrownBy(() -> CoherenceConfig.parse("rw,unsafe_no_fsync"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unsafe_no_fsync")
                .hasMessageContaining(String.join(", ", CoherenceConfig.knownOptions()));
        assertThat(CoherenceConfig.knownOptions()).hasSize(6).allMatch(n -> n.startsWith("unsafe_no_"));
    }
}
