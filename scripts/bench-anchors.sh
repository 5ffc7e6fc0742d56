#!/usr/bin/env bash
# Runs ../shared/bench/anchors.fio (or $ANCHORS) in one invocation against
#   coherentfs  a coherentfs mount of an image file,
#   fuse2fs     a fuse2fs mount of an ext4 image file,
#   raw         a directory on the host filesystem holding those images (the "raw image file"),
#   bindfs      a libfuse passthrough (bindfs --multithreaded --forward-odirect=4096) over a
#               directory on that same disk — direct jobs only, when bindfs is installed,
# and writes the table, with ratios, into the "FUSE anchors" section of docs/BENCHMARKS.md
# (replacing only that section). Run as root from anywhere; needs fio, fuse2fs, mkfs.ext4.
# BENCH_DIR (default: the repository's target/bench-anchors) must be on the disk to measure.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
anchors="${ANCHORS:-$root/../shared/bench/anchors.fio}"
work="${BENCH_DIR:-$root/target/bench-anchors}"
size="${BENCH_IMAGE_SIZE:-4g}"
cfs="$root/bin/coherentfs"
out_md="$root/docs/BENCHMARKS.md"

[ -f "$anchors" ] || { echo "bench-anchors: $anchors not found (set ANCHORS)" >&2; exit 1; }
for t in fio fuse2fs mkfs.ext4 python3; do
    command -v "$t" >/dev/null || { echo "bench-anchors: $t is missing; run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$root/fuse-frontend/target/coherentfs.jar" ] || [ -f "$root/fuse-frontend/target/coherentfs.jar" ] \
    || "$root/scripts/build.sh"

mkdir -p "$work"
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do
        umount "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_unlocked() { # the coherentfs daemon holds an flock on its image until it has closed cleanly
    local i
    for i in $(seq 600); do
        flock -n -x "$1" true 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench-anchors: the daemon of $1 did not exit" >&2
    return 1
}

direct_jobs=$(sed -n 's/^\[\(.*direct.*\)\]$/\1/p' "$anchors" | grep -v buffered || true)
run_fio() { # name dir [fio args...]
    local name="$1" dir="$2"
    shift 2
    echo "bench-anchors: $name ($dir)"
    fio --directory="$dir" --output-format=json --output="$work/$name.json" "$@" "$anchors"
    rm -f "$dir"/anchor.dat*
}

# coherentfs
rm -f "$work/cfs.img"; mkdir -p "$work/cfs.mnt"
"$cfs" mkfs --size "$size" --label anchors "$work/cfs.img" >/dev/null
# The engine's page cache sized for the 1 GiB job files (fuse2fs's misses are served by the
# host's page cache, which holds its whole image); BENCH_CFS_OPTS overrides.
"$cfs" mount "$work/cfs.img" "$work/cfs.mnt" -o "log=$work/cfs.log,${BENCH_CFS_OPTS:-cache_size=2g}"
mounted+=("$work/cfs.mnt")
run_fio coherentfs "$work/cfs.mnt"
umount "$work/cfs.mnt"; wait_unlocked "$work/cfs.img"

# fuse2fs over an ext4 image on the same disk
rm -f "$work/ext4.img"; mkdir -p "$work/ext4.mnt"
truncate -s "$size" "$work/ext4.img"
mkfs.ext4 -q -F "$work/ext4.img"
fuse2fs -o allow_other "$work/ext4.img" "$work/ext4.mnt"
mounted+=("$work/ext4.mnt")
run_fio fuse2fs "$work/ext4.mnt"
umount "$work/ext4.mnt"

# the raw host filesystem the images live on
mkdir -p "$work/raw"
run_fio raw "$work/raw"

# bindfs passthrough, direct jobs only
if command -v bindfs >/dev/null && [ -n "$direct_jobs" ]; then
    mkdir -p "$work/bind.src" "$work/bind.mnt"
    bindfs --multithreaded --forward-odirect=4096 "$work/bind.src" "$work/bind.mnt"
    mounted+=("$work/bind.mnt")
    sections=()
    for j in $direct_jobs; do sections+=("--section=$j"); done
    run_fio bindfs "$work/bind.mnt" "${sections[@]}"
    umount "$work/bind.mnt"
fi

python3 - "$work" "$out_md" "$anchors" <<'EOF'
import json, os, re, sys, datetime, platform
work, out_md, anchors = sys.argv[1], sys.argv[2], sys.argv[3]

def load(name):
    p = os.path.join(work, name + ".json")
    if not os.path.exists(p):
        return {}
    text = open(p).read()
    text = text[text.index("{"):]  # fio may print notes before the JSON
    res = {}
    for j in json.loads(text)["jobs"]:
        opts = j.get("job options", {})
        bs = opts.get("bs", "4k")
        rw = "write" if j["write"]["io_bytes"] > 0 else "read"
        d = j[rw]
        res[j["jobname"]] = (d["bw"] / 1024.0, d["iops"], bs)
    return res

targets = {n: load(n) for n in ("coherentfs", "fuse2fs", "raw", "bindfs")}
jobs = [m for m in re.findall(r"^\[(.+)\]$", open(anchors).read(), re.M) if m != "global"]

def fmt(v, bs):
    if v is None:
        return "—"
    mib, iops, _ = v
    return f"{mib:,.0f} MiB/s" if bs.endswith("m") else f"{iops:,.0f} IOPS"

def val(v, bs):
    return None if v is None else (v[0] if bs.endswith("m") else v[1])

def ratio(a, b):
    return "—" if a is None or b in (None, 0) else f"{a / b:.2f}"

rows = []
for job in jobs:
    c = targets["coherentfs"].get(job)
    bs = c[2] if c else "4k"
    vals = {n: targets[n].get(job) for n in targets}
    direct = "direct" in job
    rows.append("| {} | {} | {} | {} | {} | {} | {} |".format(
        job, fmt(vals["coherentfs"], bs), fmt(vals["fuse2fs"], bs), fmt(vals["raw"], bs), fmt(vals["bindfs"], bs),
        ratio(val(vals["coherentfs"], bs), val(vals["fuse2fs"], bs)) if not direct else
        ratio(val(vals["coherentfs"], bs), val(vals["raw"], bs)) + " (raw)",
        ratio(val(vals["coherentfs"], bs), val(vals["bindfs"], bs)) if direct else "—"))

section = f"""## FUSE anchors: `scripts/bench-anchors.sh` (issue 6)

```
scripts/bench-anchors.sh     # {datetime.date.today()}, {platform.release()}
```

`../shared/bench/anchors.fio` (each job alone, 1 GiB file, 15 s after 2 s ramp) on a coherentfs
mount, a fuse2fs mount of an ext4 image (Debian's fuse2fs), the host filesystem holding both
images ("raw"), and, for the direct jobs, bindfs `--multithreaded --forward-odirect=4096` over a
directory on the same disk. fuse2fs does not honour O_DIRECT towards its image (its "direct"
reads come from the host page cache), so the direct jobs compare coherentfs with raw and bindfs;
the buffered jobs with fuse2fs. Sequential jobs in MiB/s, random jobs in IOPS.

| job | coherentfs | fuse2fs | raw | bindfs | coherentfs / fuse2fs (buffered) or / raw (direct) | coherentfs / bindfs (direct) |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"

md = open(out_md).read() if os.path.exists(out_md) else "# Benchmarks\n"
pat = re.compile(r"^## FUSE anchors.*?(?=^## |\Z)", re.S | re.M)
md = pat.sub(lambda m: section + "\n", md) if pat.search(md) else md.rstrip("\n") + "\n\n" + section
open(out_md, "w").write(md)
print(section)
EOF
