#!/usr/bin/env bash
# The rig's `anchors` service (docker-compose.yml): once fs's mount is live, runs the anchors
# with verification (docker/anchors-verify.fio: the seven jobs of the project's anchors.fio,
# small and verified with crc32c) in a directory on the mount. Fails (exit 1) on any fio error
# or verify failure; the tests service learns the result from a file it leaves on the mount
# and ends with a failure too.
# On success it records the result and stays up (healthy) until the rig stops: a service
# that exits, even with 0, makes `docker compose up --exit-code-from tests` stop everything.
#
# ANCHORS_SIZE (default 64m): the file size of every job.
# ANCHORS_SELFTEST_CORRUPT=1: a self-test of the rig's failure path: after the jobs pass,
# overwrite 8 bytes of the file behind fio's back and verify again, which must fail.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
. "$here/lib.sh"
export ANCHORS_SIZE=${ANCHORS_SIZE:-64m}

say() { echo "anchors: $*"; }

on_term() { say "stopped"; exit 0; }
trap on_term TERM INT

say "waiting for the coherentfs mount on $RIG_MNT"
if ! rig_wait_mount "${RIG_MOUNT_TIMEOUT:-300}"; then
    echo "anchors: FAILED: no live coherentfs mount on $RIG_MNT after ${RIG_MOUNT_TIMEOUT:-300} s" >&2
    exit 1
fi
token=$(rig_token)
status_dir=$RIG_MNT/.rig-status
work=$RIG_MNT/anchors
# Earlier runs' results (under their tokens) go; only this run's counts.
mkdir -p "$status_dir" "$work" && rm -f "$work/anchor.dat" "$status_dir"/anchors.* || {
    echo "anchors: FAILED: cannot prepare $work on the mount" >&2
    exit 1
}

result() { # ok|failed: leaves this run's result where the tests service looks for it
    echo "$1" > "$status_dir/anchors.$token.tmp" && mv "$status_dir/anchors.$token.tmp" "$status_dir/anchors.$token"
}

run_fio() { # in the background, so that a TERM from compose is handled at once
    fio --directory="$work" "$@" &
    wait $!
}

failed() {
    echo "anchors: FAILED: $*" >&2
    result failed
    # Give the tests service time to read the result and fail with a message of its own
    # before this exit makes compose abort the project (and stop tests with 143).
    sleep "${RIG_FAIL_LINGER:-5}"
    exit 1
}

say "run $token: fio $(fio --version), size $ANCHORS_SIZE per job, verify=crc32c"
start=$SECONDS
run_fio "$here/anchors-verify.fio" > /tmp/anchors.out 2>&1
rc=$?
cat /tmp/anchors.out
# fio's exit status is the verdict; the grep only guards against a version that would
# print a verify failure yet exit 0.
if [ "$rc" != 0 ]; then
    failed "fio exited with status $rc"
fi
if grep -Eq 'verify failed|err= *[1-9]' /tmp/anchors.out; then
    failed "fio reported an error"
fi
say "all 7 jobs passed with verification in $((SECONDS - start)) s"

if [ "${ANCHORS_SELFTEST_CORRUPT:-0}" = 1 ]; then
    say "self-test: corrupting 8 bytes at 5 MiB + 4196 and verifying again; this must fail"
    printf 'CORRUPT!' | dd of="$work/anchor.dat" bs=1 seek=$((5 * 1048576 + 4196)) conv=notrunc status=none
    run_fio --section=seqread-direct-1m-qd8 "$here/anchors-verify.fio" > /tmp/anchors-selftest.out 2>&1
    rc=$?
    grep -E 'verify failed|err=' /tmp/anchors-selftest.out
    if [ "$rc" != 0 ]; then
        failed "self-test: fio caught the corruption (status $rc), as it must"
    fi
    failed "self-test: fio did not catch the corruption"
fi

result ok
touch /tmp/anchors.passed
say "passed; staying up until the rig stops"
sleep infinity &
wait $!
