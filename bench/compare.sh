#!/usr/bin/env bash
# Before/after: times two builds of cdi-image on the benchmark images, served
# by nginx on 127.0.0.1, in alternating runs (before, after, before, ...) so
# that a busy machine slows both alike. Prints, per image, the median wall
# time and the largest peak RSS of each build and the ratio after/before.
#
#   bench/compare.sh BEFORE_CDI_IMAGE AFTER_CDI_IMAGE
#
# BENCH_RUNS runs of each (default 5); BENCH_PIN=1 pins both to CPU 0
# (taskset -c 0), the per-core figure. Images as bench/run.sh makes them.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_CDI_IMAGE AFTER_CDI_IMAGE" >&2; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
cd "$(dirname "$0")/.."
. scripts/lib/nginx.sh
. bench/images.sh

runs=${BENCH_RUNS:-5}
dir=${BENCH_DIR:-out/bench}
images=$dir/images
work=$dir/work
pin=()
[ "${BENCH_PIN:-0}" = 1 ] && pin=(taskset -c 0)
command -v /usr/bin/time >/dev/null || apt-get install -y --no-install-recommends time >/dev/null
mkdir -p "$images" "$work"
make_raw
make_qcow2

# once BINARY URL: prints "seconds peak-KiB" of one import into a fresh target.
once() {
  rm -rf "$work"; mkdir -p "$work"; sync
  if ! /usr/bin/time -f "%e %M" -o "$dir/.time" "${pin[@]}" "$1" import --progress none \
      "$2" "$work/disk.img" >/dev/null 2>"$dir/.stderr"; then
    echo "FAILED: $1 import $2" >&2; cat "$dir/.stderr" >&2; exit 1
  fi
  tail -1 "$dir/.time"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
largest() { printf '%s\n' "$@" | sort -n | tail -1; }

trap nginx_stop EXIT
nginx_start "$images"
echo "before: $before"
echo "after:  $after"
echo "runs: $runs each, alternating${pin:+, pinned to CPU 0}"
printf '  %-14s %10s %10s %7s %12s %12s\n' image before after ratio "RSS before" "RSS after"
for img in disk.raw disk.raw.gz disk.raw.zst disk.qcow2 disk-c.qcow2; do
  tb=() ta=() mb=() ma=()
  for _ in $(seq 1 "$runs"); do
    read -r t m < <(once "$before" "$NGINX_URL/$img"); tb+=("$t"); mb+=("$m")
    read -r t m < <(once "$after" "$NGINX_URL/$img"); ta+=("$t"); ma+=("$m")
  done
  b=$(median "${tb[@]}"); a=$(median "${ta[@]}")
  printf '  %-14s %9.2fs %9.2fs %7s %8d MiB %8d MiB\n' "$img" "$b" "$a" \
    "$(python3 -c "print(f'{$a/$b:.3f}')")" \
    "$(( $(largest "${mb[@]}") / 1024 ))" "$(( $(largest "${ma[@]}") / 1024 ))"
done
