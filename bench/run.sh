#!/usr/bin/env bash
# The benchmark: serves images from nginx on 127.0.0.1 and times, in one run,
#   cdi-image import                     (ours: one pass, no scratch)
#   curl -o /dev/null                    (the link's limit)
#   curl -o scratch && qemu-img convert  (CDI's path: download, then convert)
#   nbdkit curl + qemu-img convert       (CDI's older path, qcow2 only)
# and prints wall-time ratios and peak RSS. Each figure is the median of
# BENCH_RUNS runs (default 3).
#
#   bench/run.sh [raw] [qcow2]      (default: both)
#
# Images are made once and kept in out/bench/images (BENCH_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/nginx.sh
. bench/images.sh

runs=${BENCH_RUNS:-3}
dir=${BENCH_DIR:-out/bench}
images=$dir/images
work=$dir/work
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(raw qcow2)

if ! command -v /usr/bin/time >/dev/null || ! command -v nbdkit >/dev/null; then
  apt-get install -y --no-install-recommends time nbdkit >/dev/null
fi
[ -x build/bin/cdi-image ] || scripts/build.sh
mkdir -p "$images" "$work"

# measure NAME COMMAND...: runs COMMAND $runs times (cleaning $work first), records
# the median wall time and the largest peak RSS (KiB) of its processes.
declare -A wall rss
measure() {
  local name=$1; shift
  local times=() peak=0
  for _ in $(seq 1 "$runs"); do
    rm -rf "$work"; mkdir -p "$work"
    sync
    local out
    if ! /usr/bin/time -f "%e %M" -o "$dir/.time" bash -c "$*" >/dev/null 2>"$dir/.stderr"; then
      echo "FAILED: $*" >&2
      cat "$dir/.stderr" >&2
      exit 1
    fi
    out=$(tail -1 "$dir/.time")
    times+=("${out%% *}")
    local m=${out##* }
    [ "$m" -gt "$peak" ] && peak=$m
  done
  wall[$name]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  rss[$name]=$peak
  printf '  %-34s %8.2f s   peak RSS %6d MiB\n' "$name" "${wall[$name]}" "$(( peak / 1024 ))"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

trap nginx_stop EXIT
nginx_start "$images"
cdi="build/bin/cdi-image import --progress none"

for suite in "${suites[@]}"; do
  case $suite in
  raw)
    make_raw
    echo "== raw: 2 GiB image (12.5% zero runs), served by nginx at $NGINX_URL"
    measure "curl -o /dev/null"           "curl -sf -o /dev/null $NGINX_URL/disk.raw"
    measure "cdi-image raw"               "$cdi $NGINX_URL/disk.raw $work/disk.img"
    measure "curl + qemu-img convert raw" "curl -sf -o $work/scratch $NGINX_URL/disk.raw && qemu-img convert -f raw -O raw $work/scratch $work/disk.img"
    measure "cdi-image raw.gz"            "$cdi $NGINX_URL/disk.raw.gz $work/disk.img"
    measure "curl + gunzip"               "curl -sf $NGINX_URL/disk.raw.gz | gzip -dc > $work/disk.img"
    measure "cdi-image raw.zst"           "$cdi $NGINX_URL/disk.raw.zst $work/disk.img"
    measure "curl + unzstd"               "curl -sf $NGINX_URL/disk.raw.zst | zstd -dc > $work/disk.img"
    echo "  ratios: raw import / curl -o /dev/null = $(ratio "${wall[cdi-image raw]}" "${wall[curl -o /dev/null]}") (target <= 1.15)"
    echo "          raw import / curl + qemu-img   = $(ratio "${wall[cdi-image raw]}" "${wall[curl + qemu-img convert raw]}")"
    echo "          gz import / curl | gunzip      = $(ratio "${wall[cdi-image raw.gz]}" "${wall[curl + gunzip]}")"
    echo "          zst import / curl | unzstd     = $(ratio "${wall[cdi-image raw.zst]}" "${wall[curl + unzstd]}")"
    echo "  peak RSS of cdi-image: raw $(( rss[cdi-image raw] / 1024 )) MiB, gz $(( rss[cdi-image raw.gz] / 1024 )) MiB, zst $(( rss[cdi-image raw.zst] / 1024 )) MiB (target <= 64)"
    ;;
  qcow2)
    make_qcow2
    echo "== qcow2: 4 GiB virtual, 1.5 GiB data; plain and compressed (-c)"
    for img in disk.qcow2 disk-c.qcow2; do
      measure "curl -o /dev/null $img"     "curl -sf -o /dev/null $NGINX_URL/$img"
      measure "cdi-image $img"             "$cdi $NGINX_URL/$img $work/disk.img"
      measure "curl + qemu-img $img"       "curl -sf -o $work/scratch $NGINX_URL/$img && qemu-img convert -f qcow2 -O raw $work/scratch $work/disk.img"
      measure "nbdkit curl + qemu-img $img" "nbdkit -U - curl $NGINX_URL/$img --run 'qemu-img convert -f qcow2 -O raw \$nbd $work/disk.img'"
      echo "  ratios for $img: import / curl -o /dev/null = $(ratio "${wall[cdi-image $img]}" "${wall[curl -o /dev/null $img]}")," \
           "import / CDI's path = $(ratio "${wall[cdi-image $img]}" "${wall[curl + qemu-img $img]}")," \
           "import / nbdkit path = $(ratio "${wall[cdi-image $img]}" "${wall[nbdkit curl + qemu-img $img]}")," \
           "peak RSS $(( rss[cdi-image $img] / 1024 )) MiB"
    done
    ;;
  *) echo "unknown suite $suite (raw, qcow2)" >&2; exit 2 ;;
  esac
done
