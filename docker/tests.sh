#!/usr/bin/env bash
# The rig's `tests` service (docker-compose.yml), whose exit status is the rig's
# (`docker compose up --exit-code-from tests`): waits for fs's mount and for the anchors
# service's result on it, then runs the shell suite (integration-tests/shell/check, on images
# and a mountpoint of its own in the scratch volume) and the coherence exerciser
# (scripts/exerciser.sh) on a file on fs's mount. Exit 0 only when all of it passed; 1 on any
# failure, including anchors'; 143 when compose stops it first (another service failed).
#
# COHERENTFS_SHELL_CONFIG: the shell suite's configuration (default: one written here, see
#   below; integration-tests/shell/local.config.example shows the settings).
# RIG_SHELL_ARGS (default "-g auto"): the arguments of check.
# RIG_EXERCISER_OPS (default 200000): the exerciser's op count; 0 leaves the exerciser out.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/lib.sh"
root=$(dirname "$here")

say() { echo "tests: $*"; }

# Every long step runs in the background and is waited for, so that a TERM from compose
# (its abort when another service fails, or `docker compose stop`) is handled at once.
child=
on_term() {
    say "stopped before the end (another service failed, or the rig was stopped)"
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
    exit 143
}
trap on_term TERM INT
run() {
    "$@" &
    child=$!
    wait "$child"
    local rc=$?
    child=
    return "$rc"
}

say "waiting for the coherentfs mount on $RIG_MNT"
if ! rig_wait_mount "${RIG_MOUNT_TIMEOUT:-300}"; then
    echo "tests: FAILED: no live coherentfs mount on $RIG_MNT after ${RIG_MOUNT_TIMEOUT:-300} s" >&2
    exit 1
fi
token=$(rig_token)
result_file=$RIG_MNT/.rig-status/anchors.$token
say "run $token: waiting for the anchors result"
deadline=$((SECONDS + ${RIG_ANCHORS_TIMEOUT:-900}))
while [ ! -f "$result_file" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "tests: FAILED: no anchors result after ${RIG_ANCHORS_TIMEOUT:-900} s" >&2
        exit 1
    fi
    run sleep 1
done
anchors=$(cat "$result_file")
if [ "$anchors" != ok ]; then
    echo "tests: FAILED: the anchors service failed ($anchors); see its log" >&2
    exit 1
fi
say "anchors passed"

failures=()

# --- the shell suite -------------------------------------------------------------------------
if [ -z "${COHERENTFS_SHELL_CONFIG:-}" ]; then
    if [ -f "$root/integration-tests/shell/local.config" ]; then
        COHERENTFS_SHELL_CONFIG=$root/integration-tests/shell/local.config
    else
        # Its own images and mountpoint in the scratch volume (a filesystem that does O_DIRECT;
        # a container's overlay root may not), mounted in this container only.
        COHERENTFS_SHELL_CONFIG=/tmp/rig-shell.config
        mkdir -p /scratch/shell
        cat > "$COHERENTFS_SHELL_CONFIG" <<CONFIG
IMAGE=/scratch/shell/test.img
IMAGE_SIZE=${RIG_SHELL_IMAGE_SIZE:-512m}
TEST_DIR=/scratch/shell/mnt
SCRATCH_IMAGE=/scratch/shell/scratch.img
RESULT_BASE=/scratch/shell/results
CONFIG
    fi
fi
export COHERENTFS_SHELL_CONFIG
read -r -a shell_args <<< "${RIG_SHELL_ARGS:--g auto}"
if [ -x "$root/integration-tests/shell/check" ]; then
    say "shell suite: check ${shell_args[*]} (config $COHERENTFS_SHELL_CONFIG)"
    start=$SECONDS
    run bash -c 'cd "$1" && shift && exec ./check "$@"' check "$root/integration-tests/shell" "${shell_args[@]}"
    rc=$?
    say "shell suite: exit status $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || failures+=("shell suite (exit status $rc)")
else
    echo "tests: FAILED: integration-tests/shell/check is not in this image" >&2
    failures+=("shell suite missing")
fi

# --- the coherence exerciser on fs's mount -----------------------------------------------------
ops=${RIG_EXERCISER_OPS:-200000}
if [ "$ops" = 0 ]; then
    say "exerciser: left out (RIG_EXERCISER_OPS=0)"
elif [ -x "$root/scripts/exerciser.sh" ]; then
    dir=$RIG_MNT/exerciser
    mkdir -p "$dir" && rm -f "$dir/file"
    say "exerciser: scripts/exerciser.sh $dir/file --ops $ops"
    start=$SECONDS
    run "$root/scripts/exerciser.sh" "$dir/file" --ops "$ops"
    rc=$?
    say "exerciser: exit status $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || failures+=("exerciser (exit status $rc)")
else
    echo "tests: FAILED: scripts/exerciser.sh is not in this image" >&2
    failures+=("exerciser missing")
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "tests: FAILED: ${failures[*]}" >&2
    exit 1
fi
say "all passed"
exit 0
