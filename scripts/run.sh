#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs coherentfs on the
# default image file ./coherentfs.img (1 GiB, sparse) with ./mnt beside it as the mountpoint.
# Until the filesystem and the FUSE frontend land, the job checks the device layer on that image.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
image="${COHERENTFS_IMAGE:-$PWD/coherentfs.img}"
mountpoint="${COHERENTFS_MOUNTPOINT:-$PWD/mnt}"
size="${COHERENTFS_IMAGE_SIZE:-1G}"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
if [ ! -e "$image" ]; then
    truncate -s "$size" "$image"
    echo "run: created $image ($size, sparse)"
fi
mkdir -p "$mountpoint"
exec "$root/bin/coherentfs" device-check "$image"
