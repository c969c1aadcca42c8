#!/usr/bin/env bash
# Decoder benchmark: the same disk (BENCH_SIZE virtual, default 2 GiB, half of
# it data that compresses about 2:1, as bench/formats.sh makes it) compressed
# five ways, converted from a local file to raw onto BENCH_WORK (default a
# directory on /dev/shm, so no disk counts) by
#   cdi-image import                         (ours)
# and by each format's own tool:
#   zlib-compressed qcow2    qemu-img convert -O raw     (all cores: -m 16 -W)
#   zstd-compressed qcow2    qemu-img convert -O raw     (all cores: -m 16 -W)
#   .gz   (gzip -6)          gzip -dc > out
#   .xz   (xz -6 -T0)        xz -dc > out                (all cores: xz -T0 -dc)
#   .zst  (zstd -3 -T0)      zstd -dc > out
# on one core (taskset -c 0) and on all cores, and prints the best wall time
# of BENCH_RUNS runs (default 3: the machine may be shared, and the best run
# is the one least disturbed) and ours / the tool's. The runs alternate
# between the programs, so that a busy spell slows them alike. Each of our
# outputs is compared with the tool's once (cmp).
#
#   bench/decoders.sh [qcow2-zlib] [qcow2-zstd] [gz] [xz] [zst]   (default: all)
#
# BENCH_BEFORE=PATH adds a second cdi-image (an earlier build) to every row,
# timed in the same runs: the before/after figures of a change.
# CDI_IMAGE=PATH times another build than build/bin/cdi-image.
# Images are made once and kept in out/bench/decoders-SIZE (BENCH_DIR to move
# out/bench); making them takes minutes (xz is slow).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
size=${BENCH_SIZE:-2G}
dir=${BENCH_DIR:-out/bench}
images=$dir/decoders-$size
work=${BENCH_WORK:-/dev/shm/cdi-bench-decoders.$$}
ours=${CDI_IMAGE:-build/bin/cdi-image}
before=${BENCH_BEFORE:-}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(qcow2-zlib qcow2-zstd gz xz zst)

for tool in qemu-img taskset gzip xz zstd python3 cmp; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done
[ -x "$ours" ] || scripts/build.sh
[ -z "$before" ] || [ -x "$before" ] || { echo "BENCH_BEFORE=$before is not executable" >&2; exit 2; }
. bench/images.sh
mkdir -p "$images" "$work"
trap 'rm -rf "$work"' EXIT

# case -> image file
declare -A file=([qcow2-zlib]=disk-zlib.qcow2 [qcow2-zstd]=disk-zstd.qcow2 [gz]=disk.raw.gz
  [xz]=disk.raw.xz [zst]=disk.raw.zst)

make_image() {  # CASE
  local image=$images/${file[$1]}
  [ -f "$image" ] && return
  echo "making $image ..."
  local src=$images/source.raw
  case $1 in
    qcow2-zlib) qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib "$src" "$image.tmp" ;;
    qcow2-zstd) qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$src" "$image.tmp" ;;
    gz) gzip -6 -c "$src" > "$image.tmp" ;;
    xz) xz -6 -T0 -c "$src" > "$image.tmp" ;;
    zst) zstd -q -3 -T0 -c "$src" > "$image.tmp" ;;
  esac
  mv "$image.tmp" "$image"
}

# The tool's command for CASE on one core (1) or all cores (all), as a shell
# line writing $work/ref.img.
reference() {  # CASE 1|all
  local image=$images/${file[$1]} out=$work/ref.img
  case $1:$2 in
    qcow2-*:1) echo "qemu-img convert -f qcow2 -O raw $image $out" ;;
    qcow2-*:all) echo "qemu-img convert -m 16 -W -f qcow2 -O raw $image $out" ;;
    gz:*) echo "gzip -dc $image > $out" ;;
    xz:1) echo "xz -dc $image > $out" ;;
    xz:all) echo "xz -T0 -dc $image > $out" ;;
    zst:*) echo "zstd -q -dc $image > $out" ;;
  esac
}

reference_name() {  # CASE 1|all
  case $1:$2 in
    qcow2-*:1) echo "qemu-img" ;;
    qcow2-*:all) echo "qemu-img -m 16 -W" ;;
    gz:*) echo "gzip -dc" ;;
    xz:1) echo "xz -dc" ;;
    xz:all) echo "xz -T0 -dc" ;;
    zst:*) echo "zstd -dc" ;;
  esac
}

# seconds SHELL-LINE: the wall time of one run, its outputs removed first.
seconds() {
  rm -f "$work/out.img" "$work/ref.img"
  local start end
  start=$(date +%s.%N)
  bash -c "$1" >/dev/null 2>"$work/stderr" || { echo "FAILED: $1" >&2; cat "$work/stderr" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.3f}')"
}

least() { printf '%s\n' "$@" | sort -n | head -1; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

make_source
cores=$(nproc)
echo "== $size virtual, half data; local file -> $work; best of $runs runs; $cores cores"
echo "   ours: $ours${before:+; before: $before}"
header="%-11s %-6s %-18s %9s %9s %6s"
[ -n "$before" ] && header+=" %9s %6s"
# shellcheck disable=SC2059
printf "$header\n" image cores reference "tool" "ours" "ratio" ${before:+"before" "ratio"}
for c in "${cases[@]}"; do
  [ -n "${file[$c]:-}" ] || { echo "unknown case $c (qcow2-zlib qcow2-zstd gz xz zst)" >&2; exit 2; }
  make_image "$c"
  image=$images/${file[$c]}
  import="import --progress none $image $work/out.img"
  # Same bytes as the tool's, once.
  rm -f "$work/out.img" "$work/ref.img"
  bash -c "$(reference "$c" 1)"
  "$ours" $import >/dev/null
  cmp "$work/out.img" "$work/ref.img" || { echo "$c: our output differs from the tool's" >&2; exit 1; }
  for scope in 1 all; do
    pin=""
    [ "$scope" = 1 ] && pin="taskset -c 0 "
    t_ref=() t_ours=() t_before=()
    for _ in $(seq 1 "$runs"); do
      t_ref+=("$(seconds "$pin$(reference "$c" "$scope")")")
      t_ours+=("$(seconds "$pin$ours $import")")
      [ -z "$before" ] || t_before+=("$(seconds "$pin$before $import")")
    done
    r=$(least "${t_ref[@]}")
    o=$(least "${t_ours[@]}")
    row=("$c" "$([ "$scope" = 1 ] && echo 1 || echo "$cores")" "$(reference_name "$c" "$scope")"
      "${r}s" "${o}s" "$(ratio "$o" "$r")")
    if [ -n "$before" ]; then
      b=$(least "${t_before[@]}")
      row+=("${b}s" "$(ratio "$b" "$r")")
    fi
    # shellcheck disable=SC2059
    printf "$header\n" "${row[@]}"
  done
done
