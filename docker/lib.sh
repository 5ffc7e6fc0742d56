# Sourced by the rig's service scripts (docker/*.sh): where the shared mount is and how to
# tell that it is up.

# The host directory bound into every service at /rig (fs: rshared, the others: rslave);
# the coherentfs mount is $RIG_DIR/mnt.
RIG_DIR=${RIG_DIR:-/rig}
RIG_MNT=$RIG_DIR/mnt

rig_is_shared() { # is $RIG_DIR a mount point with shared propagation in this namespace?
    awk -v d="$RIG_DIR" '$5 == d { for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) ok = 1 } END { exit !ok }' \
        /proc/self/mountinfo
}

rig_mounted() { # is anything mounted on $RIG_MNT (even a dead FUSE mount)?
    awk -v d="$RIG_MNT" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

rig_mount_live() { # is $RIG_MNT a coherentfs mount that answers?
    [ "$(findmnt -n -o FSTYPE -M "$RIG_MNT" 2>/dev/null | tail -n1)" = fuse.coherentfs ] &&
        timeout 10 stat -f "$RIG_MNT" >/dev/null 2>&1
}

rig_token() { # this run's token: the source (fsname=) of the live mount
    findmnt -n -o SOURCE -M "$RIG_MNT" 2>/dev/null | tail -n1
}

rig_wait_mount() { # SECONDS: wait until the mount is live
    local deadline=$((SECONDS + $1))
    while ! rig_mount_live; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 1
    done
}
