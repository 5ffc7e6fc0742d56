#!/usr/bin/env bash
# Builds coherentfs (all modules, tests skipped) with a JDK 25 and the pinned Maven wrapper.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
. "$root/scripts/lib/java.sh"
use_java25
cd "$root"
./mvnw -B -q -DskipTests package
# The launcher's start-up cache (see bin/coherentfs) is made by its first run after a build: do
# it now rather than in the user's first command.
echo "build: preparing the start-up cache (a training run: mkfs, fsck, a mount and its unmount)"
"$root/bin/coherentfs" --version >/dev/null
[ -f "$root/fuse-frontend/target/coherentfs.aot" ] \
    || echo "build: no start-up cache (see fuse-frontend/target/coherentfs.aot.log); commands start slower"
echo "build: ok ($root/bin/coherentfs)"
