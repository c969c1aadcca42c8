#!/usr/bin/env bash
# Per-format conversion benchmark: the same disk (BENCH_SIZE virtual, default
# 2 GiB, half of it compressible data in scattered runs) in each format,
# converted from a local file to raw by
#   cdi-image import                   (ours: one pass, front to back)
#   qemu-img convert -f FMT -O raw     (what CDI runs after its download)
# on one core (taskset -c 0) and on all cores, onto BENCH_WORK (default a
# directory on /dev/shm, so the target's disk does not count). Prints the
# median wall time of BENCH_RUNS runs (default 3) and ours / qemu-img's ratio;
# each output is checked against qemu-img's once (cmp).
#
#   bench/formats.sh [qcow2] [vmdk-stream] [vmdk-sparse] [vhd] [vhdx] [vdi]   (default: all)
#
# Images are made once and kept in out/bench/formats (BENCH_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
size=${BENCH_SIZE:-2G}
dir=${BENCH_DIR:-out/bench}
images=$dir/formats-$size
work=${BENCH_WORK:-/dev/shm/cdi-bench-formats.$$}
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(qcow2 vmdk-stream vmdk-sparse vhd vhdx vdi)

command -v qemu-img >/dev/null || { echo "qemu-img is needed" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 2; }
[ -x build/bin/cdi-image ] || scripts/build.sh
. bench/images.sh
mkdir -p "$images" "$work"
trap 'rm -rf "$work"' EXIT

# format -> qemu-img's driver and creation options
declare -A driver=([qcow2]=qcow2 [vmdk-stream]=vmdk [vmdk-sparse]=vmdk [vhd]=vpc [vhdx]=vhdx [vdi]=vdi)
declare -A create=([qcow2]="" [vmdk-stream]="-o subformat=streamOptimized"
  [vmdk-sparse]="-o subformat=monolithicSparse" [vhd]="-o subformat=dynamic,force_size=on"
  [vhdx]="-o subformat=dynamic" [vdi]="")

make_image() {  # FORMAT
  local f=$1 image=$images/disk.$1
  [ -f "$image" ] && return
  echo "making $image ..."
  # shellcheck disable=SC2086
  qemu-img convert -f raw -O "${driver[$f]}" ${create[$f]} "$images/source.raw" "$image.tmp"
  mv "$image.tmp" "$image"
}

# median COMMAND...: the median wall time (s) of $runs runs, the output removed before each.
median() {
  local times=()
  for _ in $(seq 1 "$runs"); do
    rm -f "$work/out.img"
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/stderr" || { echo "FAILED: $*" >&2; cat "$work/stderr" >&2; exit 1; }
    end=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$end - $start:.3f}')")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

make_source
echo "== $size virtual, half data; local file -> $work; median of $runs runs"
printf '%-12s %10s %10s %7s   %10s %10s %7s\n' format "ours 1c" "qemu 1c" ratio "ours all" "qemu all" ratio
for f in "${formats[@]}"; do
  [ -n "${driver[$f]:-}" ] || { echo "unknown format $f" >&2; exit 2; }
  make_image "$f"
  image=$images/disk.$f
  ours=(build/bin/cdi-image import --progress none "$image" "$work/out.img")
  qemu=(qemu-img convert -f "${driver[$f]}" -O raw "$image" "$work/out.img")
  # Same bytes as qemu-img, once.
  "${qemu[@]}" && mv "$work/out.img" "$work/reference.img"
  "${ours[@]}" >/dev/null
  cmp "$work/out.img" "$work/reference.img" || { echo "$f: output differs from qemu-img's" >&2; exit 1; }
  rm -f "$work/reference.img"
  o1=$(median taskset -c 0 "${ours[@]}")
  q1=$(median taskset -c 0 "${qemu[@]}")
  oa=$(median "${ours[@]}")
  qa=$(median "${qemu[@]}")
  printf '%-12s %9ss %9ss %7s   %9ss %9ss %7s\n' "$f" "$o1" "$q1" "$(ratio "$o1" "$q1")" \
    "$oa" "$qa" "$(ratio "$oa" "$qa")"
done
