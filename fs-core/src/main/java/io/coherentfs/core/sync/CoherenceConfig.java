package io.coherentfs.core.sync;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * The switches of the page-cache coherence mechanisms M1..M6 (DESIGN.md section 3). All are on
 * by default; each can be turned off only through a mount option named {@code unsafe_no_*}, so
 * that a race test can show its mechanism is what makes it pass. Immutable; decided once at
 * mount.
 *
 * @param deferredCompletion M1: async direct-write completion deferred to a {@code dio-done}
 *     worker that invalidates before completing
 * @param postWriteInvalidation M2: invalidate {@code [pos, pos+written)} after a direct write
 * @param pagecacheAddLock M3: the two-state {@code pagecache_add_lock} plus fault-recursion
 *     detection
 * @param delallocPunchKeepsDirty M4: a short buffered write punches delalloc only where the
 *     cache holds no dirty data
 * @param sizeBeforeInvalidation M5: an extending direct write sets i_size before invalidating
 * @param invalidationKeepsDirty M6: invalidation never drops a dirty or locked folio
 */
public record CoherenceConfig(
        boolean deferredCompletion,
        boolean postWriteInvalidation,
        boolean pagecacheAddLock,
        boolean delallocPunchKeepsDirty,
        boolean sizeBeforeInvalidation,
        boolean invalidationKeepsDirty) {

    /** Every mechanism on. */
    public static final CoherenceConfig DEFAULTS = new CoherenceConfig(true, true, true, true, true, true);

    /** Prefix of every option this record owns; other options are not its business. */
    public static final String UNSAFE_PREFIX = "unsafe_";

    /** One switch: its mechanism id, record component and the option that turns it off. */
    public enum Switch {
        DEFERRED_COMPLETION("M1", "deferredCompletion", "unsafe_no_deferred_completion"),
        POST_WRITE_INVALIDATION("M2", "postWriteInvalidation", "unsafe_no_post_write_invalidation"),
        PAGECACHE_ADD_LOCK("M3", "pagecacheAddLock", "unsafe_no_pagecache_add_lock"),
        DELALLOC_PUNCH_KEEPS_DIRTY("M4", "delallocPunchKeepsDirty", "unsafe_no_delalloc_punch_keeps_dirty"),
        SIZE_BEFORE_INVALIDATION("M5", "sizeBeforeInvalidation", "unsafe_no_isize_before_invalidation"),
        INVALIDATION_KEEPS_DIRTY("M6", "invalidationKeepsDirty", "unsafe_no_invalidation_keeps_dirty");

        private final String mechanism;
        private final String component;
        private final String offOption;

        Switch(String mechanism, String component, String offOption) {
            this.mechanism = mechanism;
            this.component = component;
            this.offOption = offOption;
        }

        public String mechanism() {
            return mechanism;
        }

        public String offOption() {
            return offOption;
        }

        /** The switch turned off by {@code option}, or null if the name is not one. */
        public static Switch byOffOption(String option) {
            for (Switch s : values()) {
                if (s.offOption.equals(option)) {
                    return s;
                }
            }
            return null;
        }
    }

    /** Whether {@code s} is on. */
    public boolean isOn(Switch s) {
        return switch (s) {
            case DEFERRED_COMPLETION -> deferredCompletion;
            case POST_WRITE_INVALIDATION -> postWriteInvalidation;
            case PAGECACHE_ADD_LOCK -> pagecacheAddLock;
            case DELALLOC_PUNCH_KEEPS_DIRTY -> delallocPunchKeepsDirty;
            case SIZE_BEFORE_INVALIDATION -> sizeBeforeInvalidation;
            case INVALIDATION_KEEPS_DIRTY -> invalidationKeepsDirty;
        };
    }

    /** The switches that are off, in M1..M6 order. */
    public Set<Switch> off() {
        EnumSet<Switch> off = EnumSet.noneOf(Switch.class);
        for (Switch s : Switch.values()) {
            if (!isOn(s)) {
                off.add(s);
            }
        }
        return off;
    }

    /** The config with every switch in {@code off} turned off, all others on. */
    public static CoherenceConfig withOff(Set<Switch> off) {
        return new CoherenceConfig(
                !off.contains(Switch.DEFERRED_COMPLETION),
                !off.contains(Switch.POST_WRITE_INVALIDATION),
                !off.contains(Switch.PAGECACHE_ADD_LOCK),
                !off.contains(Switch.DELALLOC_PUNCH_KEEPS_DIRTY),
                !off.contains(Switch.SIZE_BEFORE_INVALIDATION),
                !off.contains(Switch.INVALIDATION_KEEPS_DIRTY));
    }

    /**
     * Parses a comma-separated mount option string ({@code "rw,unsafe_no_pagecache_add_lock"}).
     * Options that do not start with {@code unsafe_} are ignored (they belong to other parsers).
     *
     * @throws IllegalArgumentException for an {@code unsafe_*} option that is not a known switch
     */
    public static CoherenceConfig parse(String options) {
        Objects.requireNonNull(options, "options");
        return fromOptions(Arrays.asList(options.split(",")));
    }

    /** As {@link #parse(String)}, for options already split. */
    public static CoherenceConfig fromOptions(Iterable<String> options) {
        EnumSet<Switch> off = EnumSet.noneOf(Switch.class);
        for (String raw : options) {
            String option = raw.strip();
            if (!option.startsWith(UNSAFE_PREFIX)) {
                continue;
            }
            Switch s = Switch.byOffOption(option);
            if (s == null) {
                throw new IllegalArgumentException("unknown option '" + option + "'; known unsafe options: "
                        + String.join(", ", knownOptions()));
            }
            off.add(s);
        }
        return withOff(off);
    }

    /** The known {@code unsafe_*} option names, in M1..M6 order. */
    public static List<String> knownOptions() {
        List<String> names = new ArrayList<>();
        for (Switch s : Switch.values()) {
            names.add(s.offOption);
        }
        return names;
    }

    /** Lists only the switches that are off: {@code CoherenceConfig[all on]} by default. */
    @Override
    public String toString() {
        Set<Switch> off = off();
        if (off.isEmpty()) {
            return "CoherenceConfig[all on]";
        }
        return off.stream()
                .map(s -> s.mechanism + " " + s.component + " (" + s.offOption + ")")
                .collect(Collectors.joining(", ", "CoherenceConfig[off: ", "]"));
    }
}
