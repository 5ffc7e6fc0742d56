#!/usr/bin/env bash
# Installs what coherentfs needs and is missing, non-interactively: the Debian packages (FUSE,
# fio, xfs_io, attr tools, e2fsprogs/fuse2fs and bindfs for comparisons) and a JDK 25 if none is found.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
. "$root/scripts/lib/java.sh"
export DEBIAN_FRONTEND=noninteractive

missing=()
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" || missing+=("$1"); }
have_cmd() { command -v "$1" >/dev/null 2>&1; }

apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }; }

if ! have_cmd apt-get; then
    echo "install-deps: no apt-get here; install libfuse2, fuse3, fio, xfsprogs, attr, e2fsprogs and a JDK 25 by hand" >&2
    find_java25 >/dev/null || exit 1
    exit 0
fi

# libfuse 2 is libfuse2t64 from Debian 13 / Ubuntu 24.04 on.
if dpkg-query -W -f='${Status}' libfuse2t64 2>/dev/null | grep -q "ok installed" \
    || dpkg-query -W -f='${Status}' libfuse2 2>/dev/null | grep -q "ok installed"; then
    :
else
    apt_update
    if apt-cache show libfuse2t64 >/dev/null 2>&1; then missing+=(libfuse2t64); else missing+=(libfuse2); fi
fi
for p in fuse3 fio xfsprogs attr e2fsprogs curl ca-certificates unzip; do need "$p"; done
if ! have_cmd fuse2fs; then
    apt_update
    if apt-cache show fuse2fs >/dev/null 2>&1; then missing+=(fuse2fs); fi
fi

# bindfs: the libfuse passthrough the FUSE benchmark (scripts/bench-anchors.sh) compares with.
if ! have_cmd bindfs; then
    apt_update
    if apt-cache show bindfs >/dev/null 2>&1; then missing+=(bindfs); fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages ${missing[*]}; run this script as root (sudo)" >&2
        exit 1
    fi
    apt_update
    echo "install-deps: installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! find_java25 >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: no JDK 25 found; run this script as root (sudo) to install one" >&2
        exit 1
    fi
    apt_update
    if apt-cache show openjdk-25-jdk-headless >/dev/null 2>&1; then
        echo "install-deps: installing openjdk-25-jdk-headless"
        apt-get install -y -qq --no-install-recommends openjdk-25-jdk-headless >/dev/null
    else
        # Debian 12 has no JDK 25; Debian 13 (trixie) does. Take only the JDK from there.
        echo "install-deps: installing openjdk-25-jdk-headless from Debian trixie"
        echo "deb http://deb.debian.org/debian trixie main" > /etc/apt/sources.list.d/coherentfs-trixie.list
        printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/coherentfs-trixie
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends -t trixie openjdk-25-jdk-headless >/dev/null
    fi
    find_java25 >/dev/null || { echo "install-deps: JDK 25 installation failed" >&2; exit 1; }
fi
echo "install-deps: ready (JDK $(find_java25))"
