#!/usr/bin/env bash
# Builds coherentfs (all modules, tests skipped) with a JDK 25 and the pinned Maven wrapper.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
. "$root/scripts/lib/java.sh"
use_java25
cd "$root"
./mvnw -B -q -DskipTests package
echo "build: ok ($root/bin/coherentfs)"
