#!/usr/bin/env bash
# What a killed import costs with checkpoints (cdi-image import --resume),
# served by Debian's nginx on 127.0.0.1:
#   - the checkpoints' own cost: a raw image imported at full speed with and
#     without --resume (median of RUNS runs each), and the time the import
#     says its checkpoints took;
#   - an import killed with SIGKILL at 25 %, 50 % and 75 % of the image, then
#     run again to the end: the body bytes nginx sent over both runs
#     (its access log's $body_bytes_sent) against the image size (target: at
#     most 1.1), the two runs' time against one uninterrupted import at the
#     same rate, and whether the result is byte-identical;
#   - the same kill runs for the image compressed by pzstd (zstd frames; a
#     checkpoint is taken between two frames): bytes sent against the .zst
#     file's size, time against an uninterrupted import of the .zst.
#
#   bench/resume.sh     (CDI_IMAGE=path/to/cdi-image to pick a build)
#
# Environment: BENCH_IMAGE_MIB (default 1024), BENCH_RATE (nginx limit_rate
# for the kill runs, default 200m), RUNS (default 3), BENCH_DIR (default
# out/bench/resume), SKIP_COST (set: only the kill runs), SKIP_RAW (set: no
# raw kill runs), SKIP_ZSTD (set: no zstd runs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/nginx.sh

dir=${BENCH_DIR:-out/bench/resume}
cdi=${CDI_IMAGE:-build/bin/cdi-image}
image_mib=${BENCH_IMAGE_MIB:-1024}
rate=${BENCH_RATE:-200m}
runs=${RUNS:-3}
[ -x "$cdi" ] || scripts/build.sh
mkdir -p "$dir/www" "$dir/work"
image=$dir/www/disk.raw
size=$((image_mib << 20))
if [ ! -f "$image" ] || [ "$(stat -c %s "$image")" -ne "$size" ]; then
  echo "making $image ($image_mib MiB, random) ..."
  head -c "$size" /dev/urandom > "$image.tmp"
  mv "$image.tmp" "$image"
fi
expected=$(sha256sum "$image" | cut -d' ' -f1)
target=$dir/work/disk.img
export no_proxy=127.0.0.1

now() { date +%s.%N; }
calc() { python3 -c "print(f'{$1:.3f}')"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The file imported: disk.raw, or disk.raw.zst for the zstd runs.
src=disk.raw
# Body bytes nginx sent for /$src so far.
sent() { awk -v p="/$src" '$7 == p {s += $10} END {printf "%.0f\n", s}' "$NGINX_DIR/access.log"; }

# import_once [FLAGS...]: a fresh import to the end; prints its wall time.
import_once() {
  rm -rf "$dir/work"; mkdir -p "$dir/work"
  local start; start=$(now)
  "$cdi" import "$NGINX_URL/$src" "$target" --progress none -q "$@"
  calc "$(now) - $start"
}

# uninterrupted: imports to the end without and with --resume (median of
# $runs each); sets $clean, the time with --resume.
uninterrupted() {
  local plain=() resumed=() p
  for _ in $(seq 1 "$runs"); do
    plain+=("$(import_once)")
    resumed+=("$(import_once --resume --checkpoint-every 64Mi)")
  done
  p=$(median "${plain[@]}"); clean=$(median "${resumed[@]}")
  echo "uninterrupted: without --resume ${p} s; with --resume --checkpoint-every 64Mi ${clean} s;" \
    "cost $(calc "($clean - $p) / $p * 100") %"
}

# kill_runs SOURCE_BYTES: imports killed with SIGKILL at 25, 50 and 75 % of
# the image, then run again; compared with $clean (an uninterrupted import).
kill_runs() {
  local src_size=$1 pct before start pid took bytes same
  for pct in 25 50 75; do
    rm -rf "$dir/work"; mkdir -p "$dir/work"
    before=$(sent)
    start=$(now)
    "$cdi" import "$NGINX_URL/$src" "$target" --progress none -q --resume \
      --checkpoint-every 64Mi &
    pid=$!
    # The image is random (no holes): the partial file's allocated blocks
    # tell how far the import got.
    until [ -f "$dir/work/.disk.img.partial" ] &&
      [ $(($(stat -c %b "$dir/work/.disk.img.partial") * 512)) -ge $((size * pct / 100)) ]; do
      sleep 0.02
    done
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    "$cdi" import "$NGINX_URL/$src" "$target" --progress none -q --resume \
      --checkpoint-every 64Mi
    took=$(calc "$(now) - $start")
    sleep 0.2  # nginx logs a request once it has sent it
    bytes=$(( $(sent) - before ))
    same=$([ "$(sha256sum "$target" | cut -d' ' -f1)" = "$expected" ] && echo yes || echo NO)
    echo "killed at ${pct} %: sent $(calc "$bytes / $src_size") x the file, ${took} s" \
      "($(calc "$took / $clean") x uninterrupted), byte-identical: $same"
  done
}

trap nginx_stop EXIT

if [ -z "${SKIP_COST:-}" ]; then
echo "== checkpoint cost: $image_mib MiB at full speed, median of $runs runs"
nginx_start "$dir/www"
plain=(); resumed=()
for _ in $(seq 1 "$runs"); do
  plain+=("$(import_once)")
  resumed+=("$(import_once --resume)")
done
rm -rf "$dir/work"; mkdir -p "$dir/work"
spent=$("$cdi" import "$NGINX_URL/disk.raw" "$target" --progress none --resume -v 2>&1 |
  sed -n 's/.*checkpoints written in \([0-9.]*\) s.*/\1/p' | tail -1)
p=$(median "${plain[@]}"); r=$(median "${resumed[@]}")
echo "without --resume: ${p} s; with --resume (every 256 MiB or 10 s): ${r} s;" \
  "cost $(calc "($r - $p) / $p * 100") %; the checkpoints themselves: ${spent:-0} s"
nginx_stop
fi

if [ -z "${SKIP_RAW:-}" ]; then
echo "== killed with SIGKILL, then run again: $image_mib MiB at $rate/s"
nginx_start "$dir/www" "$rate"
uninterrupted
kill_runs "$size"
nginx_stop
fi

if [ -z "${SKIP_ZSTD:-}" ]; then
zimage=$image.zst
if [ ! -f "$zimage" ] || [ "$zimage" -ot "$image" ]; then
  echo "compressing $image in zstd frames (pzstd -1) ..."
  pzstd -q -1 -p 2 -f "$image" -o "$zimage"
fi
zsize=$(stat -c %s "$zimage")
frames=$(zstd -l "$zimage" 2>/dev/null | awk 'NR == 2 {print $1}')
src=disk.raw.zst
echo "== zstd ($frames frames, $zsize bytes), killed with SIGKILL, then run again: at $rate/s"
nginx_start "$dir/www" "$rate"
uninterrupted
kill_runs "$zsize"
fi
