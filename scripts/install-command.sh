#!/usr/bin/env bash
# Puts a `coherentfs` command on PATH: /usr/local/bin/coherentfs -> this repository's
# bin/coherentfs. mount(8) finds it there for `mount -t fuse.coherentfs` and /etc/fstab lines
# (mount.fuse runs `coherentfs IMAGE DIR -o OPTIONS` with PATH reset to the system directories).
# Refuses to replace a different program of that name. Needs root for /usr/local/bin.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
target="${COHERENTFS_INSTALL_PATH:-/usr/local/bin/coherentfs}"
if [ -e "$target" ] || [ -L "$target" ]; then
    if [ "$(readlink -f "$target")" = "$(readlink -f "$root/bin/coherentfs")" ]; then
        exit 0
    fi
    # A link to another checkout's launcher (an older clone of this repository, present or
    # deleted since) is ours to move; anything else named coherentfs is not.
    if [ -L "$target" ] && [ "$(basename "$(dirname "$(readlink "$target")")")" = bin ] \
            && [ "$(basename "$(readlink "$target")")" = coherentfs ] \
            && { [ ! -e "$target" ] \
                 || [ -f "$(dirname "$(dirname "$(readlink "$target")")")/scripts/install-command.sh" ]; }; then
        previous="$(readlink "$target")"
        ln -sfn "$root/bin/coherentfs" "$target"
        echo "install-command: $target -> $root/bin/coherentfs (was $previous)"
        exit 0
    fi
    echo "install-command: $target exists and is not $root/bin/coherentfs; remove it first" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ] && [ ! -w "$(dirname "$target")" ]; then
    echo "install-command: cannot write $target; run as root (sudo)" >&2
    exit 1
fi
ln -s "$root/bin/coherentfs" "$target"
echo "install-command: $target -> $root/bin/coherentfs"
