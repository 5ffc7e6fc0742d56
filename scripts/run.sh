#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, installs the `coherentfs`
# command on PATH (/usr/local/bin/coherentfs, for mount -t fuse.coherentfs and fstab), formats
# ./coherentfs.img (1 GiB, sparse) on the first run, checks it, and mounts it on ./mnt, where it
# stays mounted (unmount with: umount ./mnt). Running it again while mounted says so and exits 0.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${COHERENTFS_IMAGE:-$PWD/coherentfs.img}"
mountpoint="${COHERENTFS_MOUNTPOINT:-$PWD/mnt}"
size="${COHERENTFS_IMAGE_SIZE:-1g}"
cfs="$root/bin/coherentfs"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
"$root/scripts/install-command.sh"
mkdir -p "$mountpoint"
if awk -v mp="$(readlink -f "$mountpoint")" '$5 == mp && / - fuse\.coherentfs /' /proc/self/mountinfo | grep -q .; then
    echo "run: $mountpoint is already mounted (unmount with: umount $mountpoint)"
    exit 0
fi
if [ ! -e "$image" ]; then
    "$cfs" mkfs --size "$size" --label coherentfs "$image"
fi
status=0
"$cfs" fsck -n -q "$image" >/dev/null || status=$?
if [ "$status" -eq 8 ]; then
    echo "run: $image is not a coherentfs image; remove it, or set COHERENTFS_IMAGE to another path" >&2
    exit 1
elif [ "$status" -ne 0 ]; then
    echo "run: fsck found problems in $image (exit $status); repair with: $cfs fsck $image" >&2
    exit 1
fi
coherentfs mount "$image" "$mountpoint"
echo "run: $image is mounted on $mountpoint (daemon log: /var/log/coherentfs/$(basename "$image").log)"
echo "run: try 'coherentfs stats $mountpoint'; unmount with 'umount $mountpoint'"
