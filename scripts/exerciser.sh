#!/usr/bin/env bash
# The coherence exerciser (integration-tests/src/main/java/io/coherentfs/exerciser): an fsx-like
# randomized run of buffered, O_DIRECT, io_uring and mmap IO, truncate and fallocate on one file,
# checked against an in-memory shadow. Point it at a file on a mounted coherentfs:
#
#   scripts/exerciser.sh MNT/fsx.dat                      # 100000 ops, random seed (printed)
#   scripts/exerciser.sh MNT/fsx.dat --ops 1000000 --seed 42
#   scripts/exerciser.sh MNT/fsx.dat --soak               # until interrupted (Ctrl-C)
#   scripts/exerciser.sh MNT/fsx.dat --replay SEED --ops N   # what a failure report prints
#
# Exit: 0 clean, 1 mismatch, 2 usage, 3 unexpected error. `--help` lists every option.
# scripts/build.sh builds it with everything else; when its classes are missing this compiles them.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=lib/java.sh
. "$root/scripts/lib/java.sh"
use_java25
classes="$root/integration-tests/target/classes"
lib="$root/fuse-frontend/target/lib"
if [ ! -f "$classes/io/coherentfs/exerciser/Exerciser.class" ]; then
    echo "exerciser.sh: building the exerciser (integration-tests, compile)" >&2
    (cd "$root" && ./mvnw -q -B -o -pl integration-tests -am compile >&2)
fi
if [ ! -d "$lib" ]; then
    echo "exerciser.sh: $lib is missing; run $root/scripts/build.sh" >&2
    exit 3
fi
exec "$JAVA_HOME/bin/java" \
    --enable-native-access=ALL-UNNAMED \
    ${EXERCISER_JVM_OPTS:-} \
    -cp "$classes:$lib/*" \
    io.coherentfs.exerciser.Exerciser "$@"
