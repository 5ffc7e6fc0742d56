#!/usr/bin/env bash
# Prepares the host for the compose rig (run as root before `docker compose up`; harmless to
# run again). The fs service binds the rig directory with propagation rshared, which Docker
# refuses unless the host mount holding that directory is itself a shared mount. Hosts
# booted by systemd mount / shared and need nothing but the directory; elsewhere (some
# containers, minimal VMs) this makes the rig directory a shared bind mount of itself, which
# changes nothing else on the host. `umount "$dir"` undoes it.
set -euo pipefail
dir=${COHERENTFS_RIG_DIR:-/run/coherentfs-rig}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
# The propagation of the mount that holds $dir (the deepest mount point above it).
propagation=$(findmnt -n -o PROPAGATION --target "$dir" | head -n1)
case "$propagation" in
shared*)
    echo "prepare-host: $dir is on a shared mount already ($(findmnt -n -o TARGET --target "$dir" | head -n1))"
    ;;
*)
    if ! findmnt -n -M "$dir" >/dev/null; then
        mount --bind "$dir" "$dir"
    fi
    mount --make-rshared "$dir"
    echo "prepare-host: $dir is now a shared bind mount of itself"
    ;;
esac
