#!/usr/bin/env bash
# Per-format conversion benchmark: the same disk (BENCH_SIZE virtual, default
# 2 GiB, half of it compressible data in scattered runs) in each format,
# converted to raw by
#   cdi-image import                   (ours: one pass, front to back)
#   qemu-img convert -f FMT -O raw     (what CDI runs after its download)
# on one core (taskset -c 0) and on all cores, onto BENCH_WORK (default a
# directory on /dev/shm, so the target's disk does not count). Prints the
# median wall time of BENCH_RUNS runs (default 3), ours / qemu-img's ratio and
# each side's peak RSS (/usr/bin/time: the largest process of the command);
# each output is checked against qemu-img's once (cmp).
#
# From a local file by default. BENCH_HTTP=1 serves the images from nginx on
# 127.0.0.1 and compares, in one run,
#   cdi-image import URL TARGET
#   curl -o SCRATCH URL && qemu-img convert -f FMT -O raw SCRATCH TARGET   (CDI's path)
# with SCRATCH beside TARGET in BENCH_WORK; taskset pins the client side
# (cdi-image, or curl and qemu-img), not nginx.
#
#   bench/formats.sh [qcow2] [vmdk-stream] [vmdk-sparse] [vhd] [vhdx] [vdi]   (default: all)
#
# Images are made once and kept in out/bench/formats (BENCH_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
size=${BENCH_SIZE:-2G}
http=${BENCH_HTTP:-0}
dir=${BENCH_DIR:-out/bench}
images=$dir/formats-$size
work=${BENCH_WORK:-/dev/shm/cdi-bench-formats.$$}
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(qcow2 vmdk-stream vmdk-sparse vhd vhdx vdi)

for tool in qemu-img taskset /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done
if [ "$http" = 1 ]; then
  for tool in nginx curl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed for BENCH_HTTP=1" >&2; exit 2; }
  done
fi
[ -x build/bin/cdi-image ] || scripts/build.sh
. bench/images.sh
. scripts/lib/nginx.sh
mkdir -p "$images" "$work"
trap 'nginx_stop; rm -rf "$work"' EXIT

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

# measure COMMAND: runs the shell command $runs times, the output and scratch
# removed before each; sets $wall (median, s) and $rss (largest peak, MiB).
measure() {
  local times=() peak=0 out
  for _ in $(seq 1 "$runs"); do
    rm -f "$work/out.img" "$work/scratch"
    if ! /usr/bin/time -f "%e %M" -o "$work/time" bash -c "$1" >/dev/null 2>"$work/stderr"; then
      echo "FAILED: $1" >&2
      cat "$work/stderr" >&2
      exit 1
    fi
    out=$(tail -1 "$work/time")
    times+=("${out%% *}")
    [ "${out##* }" -gt "$peak" ] && peak=${out##* }
  done
  wall=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  rss=$(( peak / 1024 ))
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

make_source
for f in "${formats[@]}"; do
  [ -n "${driver[$f]:-}" ] || { echo "unknown format $f" >&2; exit 2; }
  make_image "$f"
done
if [ "$http" = 1 ]; then
  nginx_start "$images"
  where="served by nginx at $NGINX_URL; cdi-image import against curl -o scratch + qemu-img convert"
  other="CDI"
else
  where="local file; cdi-image import against qemu-img convert"
  other="qemu"
fi
echo "== $size virtual, half data; $where; onto $work; median of $runs runs"
printf '%-12s %8s %8s %6s   %8s %8s %6s   %9s %9s\n' format "ours 1c" "$other 1c" ratio \
  "ours all" "$other all" ratio "ours RSS" "$other RSS"
for f in "${formats[@]}"; do
  if [ "$http" = 1 ]; then
    source=$NGINX_URL/disk.$f
    ours="build/bin/cdi-image import --progress none $source $work/out.img"
    theirs="curl -sf -o $work/scratch $source && qemu-img convert -f ${driver[$f]} -O raw $work/scratch $work/out.img"
  else
    source=$images/disk.$f
    ours="build/bin/cdi-image import --progress none $source $work/out.img"
    theirs="qemu-img convert -f ${driver[$f]} -O raw $source $work/out.img"
  fi
  # Same bytes as qemu-img of the local file, once.
  rm -f "$work/out.img" "$work/scratch"
  qemu-img convert -f "${driver[$f]}" -O raw "$images/disk.$f" "$work/reference.img"
  bash -c "$ours" >/dev/null
  cmp "$work/out.img" "$work/reference.img" || { echo "$f: output differs from qemu-img's" >&2; exit 1; }
  rm -f "$work/reference.img"
  measure "taskset -c 0 bash -c '$ours'"; o1=$wall; orss=$rss
  measure "taskset -c 0 bash -c '$theirs'"; t1=$wall; trss=$rss
  measure "$ours"; oa=$wall; (( rss > orss )) && orss=$rss
  measure "$theirs"; ta=$wall; (( rss > trss )) && trss=$rss
  printf '%-12s %7ss %7ss %6s   %7ss %7ss %6s   %5d MiB %5d MiB\n' "$f" "$o1" "$t1" "$(ratio "$o1" "$t1")" \
    "$oa" "$ta" "$(ratio "$oa" "$ta")" "$orss" "$trss"
done
