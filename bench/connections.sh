#!/usr/bin/env bash
# Several connections against one: `cdi-image import` of a raw image from
# nginx on 127.0.0.1, through the project's delay relay (bench/delay_relay.py)
# that adds a round trip of RTT_MS and caps each connection at RATE bytes/s
# and all of them together at LINK bytes/s, then straight from nginx (the
# unthrottled local link). Prints, in one run, the time of one GET
# (--connections 1) and of N connections, the throughput, and its ratio to
# min(N x RATE, LINK) (target: at least 0.9), with the default memory budget
# and with BIG_BUDGET; on the local link, N connections against one GET
# (target: never slower; the best of LOCAL_RUNS runs each). Each row has the import's
# peak RSS (/usr/bin/time).
#
#   bench/connections.sh       (CDI_IMAGE=path/to/cdi-image to pick a build)
#   SIZE_MIB=512 RATE=20000000 LINK=60000000 RTT_MS=50 BIG_BUDGET=256Mi bench/connections.sh
#   (RELAY_CONNECTIONS="2 4" for some rows only; BIG_BUDGET= for none)
#
# The cap is the relay's, not nginx's limit_rate: nginx lets each response
# send a second's worth (limit_rate bytes) at full speed before it paces it,
# so it does not cap a ranged GET of a few MiB at all.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${BENCH_DIR:-out/bench/connections}
cdi_image=${CDI_IMAGE:-build/bin/cdi-image}
size_mib=${SIZE_MIB:-512}
rate=${RATE:-20000000}
link=${LINK:-60000000}
rtt_ms=${RTT_MS:-50}
big_budget=${BIG_BUDGET-256Mi}
[ -x "$cdi_image" ] || scripts/build.sh
mkdir -p "$dir/www" "$dir/work"
image=$dir/www/disk.raw
if [ "$(stat -c %s "$image" 2>/dev/null || echo 0)" -ne $((size_mib << 20)) ]; then
  echo "making $image ($size_mib MiB, random) ..."
  head -c $((size_mib << 20)) /dev/urandom > "$image.tmp"
  mv "$image.tmp" "$image"
fi
expected=$(sha256sum "$image" | cut -d' ' -f1)

. scripts/lib/nginx.sh
relay_pid=
cleanup() {
  [ -n "$relay_pid" ] && { kill "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null || true; }
  nginx_stop
}
trap cleanup EXIT
nginx_start "$dir/www"
export no_proxy=127.0.0.1
rm -f "$dir/relay.port"
python3 bench/delay_relay.py --listen-port-file "$dir/relay.port" \
  --upstream "127.0.0.1:$NGINX_PORT" --rtt-ms "$rtt_ms" \
  --connection-rate "$rate" --link-rate "$link" > "$dir/relay.out" 2>&1 &
relay_pid=$!
for _ in $(seq 1 100); do [ -f "$dir/relay.port" ] && break; sleep 0.05; done
relay_url="http://127.0.0.1:$(cat "$dir/relay.port")"

# import URL FLAGS...: the wall time of one import into a fresh file,
# checked; its peak RSS in MiB goes to $dir/rss.
import_once() {
  local url=$1; shift
  rm -rf "$dir/work"; mkdir -p "$dir/work"
  local start end
  start=$(date +%s.%N)
  if ! /usr/bin/time -f %M -o "$dir/time.out" "$cdi_image" import "$url/disk.raw" "$dir/work/disk.img" --progress none "$@" \
      > "$dir/import.out" 2> "$dir/import.err"; then
    cat "$dir/import.err" >&2; exit 1
  fi
  end=$(date +%s.%N)
  echo $(($(tail -n1 "$dir/time.out") / 1024)) > "$dir/rss"
  [ "$(sha256sum "$dir/work/disk.img" | cut -d' ' -f1)" = "$expected" ] ||
    { echo "$url $*: not byte-identical" >&2; exit 1; }
  python3 -c "print(f'{$end - $start:.2f}')"
}

# Body bytes nginx has sent so far (its access log, once each response ended).
sent_total() { sleep 0.3; awk '{s += $10} END {printf "%.0f\n", s}' "$NGINX_DIR/access.log"; }

bytes=$((size_mib << 20))
echo "$size_mib MiB raw image; relay: RTT $rtt_ms ms, $((rate / 1000000)) MB/s a connection, link $((link / 1000000)) MB/s"
curl_speed=$(curl -s -o /dev/null -w '%{speed_download}' "$relay_url/disk.raw")
python3 -c "print(f'curl -o /dev/null through the relay (one GET): {$curl_speed / 1e6:.1f} MB/s')"
printf '%-26s %5s %8s %9s %14s %6s %9s %8s\n' link connections time "MB/s" "min(N*C,link)" ratio sent/size "RSS MiB"
for budget in auto ${big_budget:+"$big_budget"}; do
  for n in ${RELAY_CONNECTIONS:-1 2 4 8}; do
    before=$(sent_total)
    t=$(import_once "$relay_url" --connections "$n" --memory "$budget")
    after=$(sent_total)
    python3 - "$n" "$t" "$bytes" "$rate" "$link" "$budget" "$((after - before))" "$(cat "$dir/rss")" <<'PY'
import sys
n, t, size, rate, link, budget, sent, rss = int(sys.argv[1]), float(sys.argv[2]), \
    int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6], int(sys.argv[7]), \
    int(sys.argv[8])
ideal = min(n * rate, link) / 1e6
speed = size / t / 1e6
print(f"{'relay, --memory ' + budget:<26} {n:5d} {t:7.2f}s {speed:9.1f} {ideal:14.1f} {speed / ideal:6.2f}"
      f" {sent / size:9.3f} {rss:8d}")
PY
  done
done

# The local link: the best of LOCAL_RUNS runs each (default 5: the disk's
# speed varies by 10 % from run to run), alternating between the counts.
declare -A best rss
for _ in $(seq 1 "${LOCAL_RUNS:-5}"); do
  for n in 1 4 8; do
    t=$(import_once "$NGINX_URL" --connections "$n")
    if [ -z "${best[$n]:-}" ] || python3 -c "import sys; sys.exit(0 if $t < ${best[$n]} else 1)"; then
      best[$n]=$t
    fi
    rss[$n]=$(( $(cat "$dir/rss") > ${rss[$n]:-0} ? $(cat "$dir/rss") : ${rss[$n]:-0} ))
  done
done
for n in 1 4 8; do
  python3 -c "
n, t, one, size, rss = $n, ${best[$n]}, ${best[1]}, $bytes, ${rss[$n]}
print(f\"{'local nginx, unthrottled':<26} {n:5d} {t:7.2f}s {size / t / 1e6:9.1f} {'one GET':>14} {one / t:6.2f} {'':>9} {rss:8d}\")"
done
