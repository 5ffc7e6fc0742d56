#!/usr/bin/env bash
# The README's second command: installs what is missing and runs the whole test suite
# (unit, race and integration tests of every module) with a JDK 25.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
"$root/scripts/install-deps.sh"
# The mount tests drive `mount -t fuse.coherentfs` and fstab lines, which find the command on PATH.
"$root/scripts/install-command.sh"
. "$root/scripts/lib/java.sh"
use_java25
cd "$root"
exec ./mvnw -B verify "$@"
