#!/usr/bin/env bash
# The rig's `fs` service (docker-compose.yml): formats the image in the data volume on the
# first start, mounts it with coherentfs on the shared mountpoint, stays up while the daemon
# runs, and on `docker compose stop/down` (SIGTERM) unmounts, waits for the daemon to write
# everything back and exit, and checks the image with `coherentfs fsck -n`.
#   fs.sh          run the service
#   fs.sh health   the healthcheck: exit 0 when the mountpoint is a live coherentfs mount
set -uo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"

IMAGE=${COHERENTFS_RIG_IMAGE:-/data/coherentfs.img}
IMAGE_SIZE=${COHERENTFS_RIG_IMAGE_SIZE:-2g}
OPTIONS=${COHERENTFS_RIG_MOUNT_OPTIONS:-}

if [ "${1:-}" = health ]; then
    rig_mount_live
    exit
fi

say() { echo "fs: $*"; }

# On a failure before the mount is up: stay a little longer before exiting non-zero, so that
# the tests service (whose exit code the rig reports) is already running when compose
# aborts the project, and ends with a failure instead of never starting (see DOCKER.md).
fail() {
    echo "fs: FAILED: $*" >&2
    sleep "${RIG_FAIL_LINGER:-15}"
    exit 1
}

# The mountpoint's parent must be a shared mount (the bind mount of the host's rig directory
# with propagation rshared): only then does the FUSE mount made here appear in the other
# services, whose binds of the same directory are its slaves.
rig_is_shared || fail "$RIG_DIR is not a shared mount here; the fs service needs its bind mount with propagation: rshared (see docs/DOCKER.md)"

# A mount left over from an earlier run whose daemon was killed (a dead FUSE mount answers
# ENOTCONN) would make the mountpoint unusable: it is the rig's own, so take it away.
if rig_mounted; then
    say "unmounting a mount left on $RIG_MNT by an earlier run"
    umount "$RIG_MNT" 2>/dev/null || umount -l "$RIG_MNT" || fail "cannot unmount the old mount on $RIG_MNT"
fi
mkdir -p "$RIG_MNT" "$(dirname "$IMAGE")" || fail "cannot create $RIG_MNT"

if [ ! -e "$IMAGE" ]; then
    say "formatting $IMAGE ($IMAGE_SIZE)"
    coherentfs mkfs --size "$IMAGE_SIZE" --label rig "$IMAGE" || fail "mkfs of $IMAGE failed"
else
    say "checking $IMAGE"
    coherentfs fsck -n "$IMAGE" || fail "fsck -n of $IMAGE found problems (docker compose down -v starts from a fresh image)"
fi

# A new token for this run, carried by the mount itself as its source (fsname=): the other
# services read it from their mount table, so no state of an earlier run can be taken for
# this one's.
token="rig-$(date +%s)-$$-$RANDOM"
opts="fsname=$token"
[ -n "$OPTIONS" ] && opts="$opts,$OPTIONS"

say "mounting $IMAGE on $RIG_MNT (-o $opts)"
coherentfs mount -f "$IMAGE" "$RIG_MNT" -o "$opts" &
daemon=$!

stopping=0
stop() {
    [ "$stopping" = 0 ] || return 0
    stopping=1
    say "stopping: unmounting $RIG_MNT"
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        rig_mounted || break
        umount "$RIG_MNT" 2>/dev/null && break
        sleep 1
    done
    # Still mounted (busy): the daemon detaches the mount itself on SIGTERM.
    if rig_mounted; then
        say "umount failed (busy?); asking the daemon to detach"
        kill -TERM "$daemon" 2>/dev/null
    fi
}
trap stop TERM INT HUP

# Wait until the mount is live (or the daemon died): up to about 2 minutes.
for _ in $(seq 1 1200); do
    rig_mount_live && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
if ! rig_mount_live; then
    kill -TERM "$daemon" 2>/dev/null
    wait "$daemon"
    fail "the mount did not come up (daemon exit status $?)"
fi
say "mounted: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS -M "$RIG_MNT")"
# Stopped while the mount was coming up: unmount now that there is something to unmount.
if [ "$stopping" = 1 ]; then
    stopping=0
    stop
fi

# `wait` returns early when a trapped signal arrives: wait again until the daemon is gone.
status=0
while kill -0 "$daemon" 2>/dev/null; do
    wait "$daemon"
    status=$?
done
# A wait cut short by the signal left the daemon unreaped: its real status comes now
# (127 means the wait above already had it).
wait "$daemon" 2>/dev/null
s=$?
[ "$s" = 127 ] || status=$s
if [ "$stopping" = 0 ]; then
    echo "fs: FAILED: the coherentfs daemon exited (status $status) while the rig was running" >&2
    # Its dead mount (ENOTCONN) would stay on the host's rig directory: take it away.
    rig_mounted && umount -l "$RIG_MNT"
    sleep "${RIG_FAIL_LINGER:-15}"
    exit 1
fi
say "daemon exited (status $status)"

# The daemon drops the image's lock last, after writing back and marking the image clean.
flock -w 60 "$IMAGE" true || { echo "fs: FAILED: the image is still locked 60 s after the daemon exited" >&2; exit 1; }
if coherentfs fsck -n "$IMAGE"; then
    say "clean: fsck -n found nothing to repair"
else
    echo "fs: FAILED: fsck -n after unmount found problems" >&2
    exit 1
fi
[ "$status" = 0 ] || exit 1
exit 0
