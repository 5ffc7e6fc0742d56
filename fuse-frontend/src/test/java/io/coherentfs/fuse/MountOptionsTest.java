package io.coherentfs.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.sync.CoherenceConfig;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import java.util.List;
import org.junit.jupiter.api.Test;

class MountOptionsTest {
    @Test
    void whatMountFuseAndFstabPassIsAccepted() {
        MountOptions o = MountOptions.parse(List.of("ro,noatime,nosuid,cache_size=64m,dev", "defaults,_netdev,noauto,x-gvfs-show"));
        assertThat(o.readOnly()).isTrue();
        assertThat(o.cacheBytes()).isEqualTo(64L << 20);
        assertThat(o.atime()).isEqualTo(CoherentFs.Atime.NOATIME);
        assertThat(o.fuseOptions()).containsExactly("nosuid", "dev", "ro", "noatime");
        assertThat(o.coherence()).isEqualTo(CoherenceConfig.DEFAULTS);
        assertThat(o.subtype()).isEqualTo("coherentfs");
    }

    @Test
    void oursAreParsed() {
        MountOptions o = MountOptions.parse(List.of("metrics=localhost:9464,fsname=data,subtype=cfs,unsafe_no_deferred_completion,rw"));
        assertThat(o.metrics().getPort()).isEqualTo(9464);
        assertThat(o.metrics().getAddress().isLoopbackAddress()).isTrue();
        assertThat(o.fsname()).isEqualTo("data");
        assertThat(o.subtype()).isEqualTo("cfs");
        assertThat(o.readOnly()).isFalse();
        assertThat(o.coherence().deferredCompletion()).isFalse();
        assertThat(o.kernelStoreGate()).isTrue();
        assertThat(MountOptions.parse(List.of("unsafe_no_kernel_store_gate")).kernelStoreGate()).isFalse();
    }

    @Test
    void unknownAndBadOptionsAreNamed() {
        assertThatThrownBy(() -> MountOptions.parse(List.of("rw,frob"))).hasMessage("unknown mount option 'frob'");
        assertThatThrownBy(() -> MountOptions.parse(List.of("unsafe_no_such_thing"))).hasMessageContaining("unsafe_no_such_thing");
        assertThatThrownBy(() -> MountOptions.parse(List.of("metrics=8.8.8.8:80"))).hasMessageContaining("loopback");
        assertThatThrownBy(() -> MountOptions.parse(List.of("cache_size=lots"))).hasMessageContaining("cache_size=lots");
    }

    @Test
    void remountAndFuseblkOptions() {
        // what mount(8) hands mount.fuse for `mount -o remount,ro DIR`
        MountOptions o = MountOptions.parse(List.of(
                "ro,nosuid,nodev,relatime,remount,user_id=0,group_id=0,default_permissions,allow_other"));
        assertThat(o.remount()).isTrue();
        assertThat(o.kernelFlags()).isEqualTo(LinuxSyscalls.MS_RDONLY | LinuxSyscalls.MS_NOSUID
                | LinuxSyscalls.MS_NODEV | LinuxSyscalls.MS_RELATIME);
        assertThat(MountOptions.parse(List.of("rw,noatime,remount")).kernelFlags()).isEqualTo(LinuxSyscalls.MS_NOATIME);
        assertThat(MountOptions.parse(List.of("rw")).fuseblk()).isNull();
        assertThat(MountOptions.parse(List.of("nofuseblk")).fuseblk()).isFalse();
        assertThat(MountOptions.parse(List.of("fuseblk")).fuseblk()).isTrue();
    }

    @Test
    void transportAndThreads() {
        assertThat(MountOptions.parse(List.of("rw")).transport()).isEqualTo(MountOptions.Transport.KERNEL);
        assertThat(MountOptions.parse(List.of("transport=libfuse")).transport()).isEqualTo(MountOptions.Transport.LIBFUSE);
        MountOptions k = MountOptions.parse(List.of("transport=kernel,threads=4"));
        assertThat(k.transport()).isEqualTo(MountOptions.Transport.KERNEL);
        assertThat(k.threads()).isEqualTo(4);
        assertThat(k.fuseOptions()).isEmpty();
        assertThat(MountOptions.parse(List.of("transport=libfuse")).threads()).isEqualTo(MountOptions.DEFAULT_THREADS);
        assertThatThrownBy(() -> MountOptions.parse(List.of("transport=fuse3"))).hasMessageContaining("transport=fuse3");
        assertThatThrownBy(() -> MountOptions.parse(List.of("threads=0"))).hasMessageContaining("threads=0");
    }

    @Test
    void mountFuseFormMeansMount() {
        assertThat(io.coherentfs.cli.MainAccess.mountFuseForm("img", "dir", "-o", "rw"))
                .containsExactly("mount", "img", "dir", "-o", "rw");
        assertThat(io.coherentfs.cli.MainAccess.mountFuseForm("fsck", "img")).containsExactly("fsck", "img");
        assertThat(io.coherentfs.cli.MainAccess.mountFuseForm("-h")).containsExactly("-h");
    }
}
