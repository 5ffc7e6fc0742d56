# coherentfs in a container: `docker build -t coherentfs .` (see docs/DOCKER.md).
#
# Stage 1 builds every module with the repository's pinned Maven wrapper (Maven 3.9.11, fetched
# by ./mvnw on first use) and a JDK 25 from Debian 13. Building downloads Debian packages,
# Maven and the Maven dependencies from their public repositories; nothing else is fetched.
# Stage 2 is what runs: the JDK, the FUSE libraries and the tools the tests drive (fio, xfs_io,
# getfattr/setfattr, e2fsprogs), the built tree under /opt/coherentfs and the `coherentfs`
# command on PATH as /usr/local/bin/coherentfs, so that `mount -t fuse.coherentfs` works.
# Mounting needs /dev/fuse and CAP_SYS_ADMIN at run time (docker run --device /dev/fuse
# --cap-add SYS_ADMIN --security-opt apparmor:unconfined ...).

FROM debian:trixie AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        openjdk-25-jdk-headless ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The poms and the wrapper first, so that a change of source alone reuses the layer holding
# Maven and most of the dependencies. go-offline cannot resolve the reactor's own modules
# (they are not built yet); the package step below fetches whatever it left out.
COPY mvnw pom.xml ./
COPY .mvn .mvn
COPY blockdev/pom.xml blockdev/
COPY fs-core/pom.xml fs-core/
COPY fuse-frontend/pom.xml fuse-frontend/
COPY integration-tests/pom.xml integration-tests/
RUN ./mvnw -B -q dependency:go-offline -DexcludeGroupIds=io.coherentfs >/dev/null 2>&1 || true
# Only what Maven compiles: a change to the scripts or the shell suite does not rebuild.
COPY blockdev blockdev
COPY fs-core fs-core
COPY fuse-frontend fuse-frontend
COPY integration-tests/pom.xml integration-tests/
COPY integration-tests/src integration-tests/src
RUN ./mvnw -B -DskipTests package \
 && test -f fuse-frontend/target/coherentfs.jar

FROM debian:trixie
ENV DEBIAN_FRONTEND=noninteractive
# libfuse 2 is named libfuse2t64 from Debian 13 on; fuse3 brings fusermount and mount.fuse
# (mount -t fuse.TYPE runs mount.fuse, which runs the `coherentfs` command).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        openjdk-25-jdk-headless libfuse2t64 fuse3 fio xfsprogs attr e2fsprogs util-linux \
        procps psmisc diffutils bsdextrautils perl kmod ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The built tree (sources, target/ directories: the jars, fuse-frontend/target/lib, the
# classes the exerciser runs), then the launcher, the scripts, the rig's service scripts
# (docker/) and the shell suite from the sources.
COPY --from=build /src /opt/coherentfs
COPY bin /opt/coherentfs/bin
COPY scripts /opt/coherentfs/scripts
COPY docker /opt/coherentfs/docker
COPY integration-tests/shell /opt/coherentfs/integration-tests/shell
RUN ln -s /opt/coherentfs/bin/coherentfs /usr/local/bin/coherentfs \
 && mkdir -p /var/log/coherentfs /run/coherentfs \
 && coherentfs --help >/dev/null
WORKDIR /opt/coherentfs
CMD ["coherentfs", "--help"]
