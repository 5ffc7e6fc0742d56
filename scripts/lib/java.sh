# Sourced by bin/coherentfs and scripts/*: finds a JDK 25 or newer and exports JAVA_HOME.
# Order: $COHERENTFS_JAVA_HOME, $JAVA_HOME, /usr/lib/jvm/*, the java on PATH. The machine's
# default java may be 17: it is never used unless it is 25+.

_java_major() { # JAVA_HOME -> major version, or nothing
    local home="$1" v
    [ -x "$home/bin/java" ] || return 0
    if [ -f "$home/release" ]; then
        v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
    fi
    if [ -z "${v:-}" ]; then
        v=$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    fi
    echo "${v:-}"
}

find_java25() { # prints a JAVA_HOME whose major version is >= 25; fails otherwise
    local c major
    for c in "${COHERENTFS_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/*; do
        [ -n "$c" ] && [ -d "$c" ] || continue
        major=$(_java_major "$c")
        if [ -n "$major" ] && [ "$major" -ge 25 ]; then
            (cd "$c" && pwd -P)
            return 0
        fi
    done
    if command -v java >/dev/null 2>&1; then
        c=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
        major=$(_java_major "$c")
        if [ -n "$major" ] && [ "$major" -ge 25 ]; then
            echo "$c"
            return 0
        fi
    fi
    return 1
}

use_java25() { # exports JAVA_HOME or exits with a clear message
    local home
    if ! home=$(find_java25); then
        echo "coherentfs: no JDK 25 found (looked at \$COHERENTFS_JAVA_HOME, \$JAVA_HOME, /usr/lib/jvm); run scripts/install-deps.sh as root" >&2
        exit 1
    fi
    export JAVA_HOME="$home"
    export PATH="$JAVA_HOME/bin:$PATH"
}
