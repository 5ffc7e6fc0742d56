#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs coherentfs on the
# default image file ./coherentfs.img (1 GiB, sparse) with ./mnt beside it as the mountpoint.
# Until the FUSE frontend lands (issue 6) the job formats the image (first run only), checks it
# with fsck, and shows the device layer's view of it; then it will mount it on ./mnt.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${COHERENTFS_IMAGE:-$PWD/coherentfs.img}"
mountpoint="${COHERENTFS_MOUNTPOINT:-$PWD/mnt}"
size="${COHERENTFS_IMAGE_SIZE:-1g}"
cfs="$root/bin/coherentfs"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
if [ ! -e "$image" ]; then
    "$cfs" mkfs --size "$size" --label coherentfs "$image"
fi
mkdir -p "$mountpoint"
status=0
"$cfs" fsck -n "$image" || status=$?
if [ "$status" -eq 8 ]; then
    echo "run: $image is not a coherentfs image; remove it, or set COHERENTFS_IMAGE to another path" >&2
    exit 1
elif [ "$status" -ne 0 ]; then
    echo "run: fsck found problems in $image (exit $status); repair with: $cfs fsck $image" >&2
    exit 1
fi
exec "$cfs" device-check --read-only "$image"
