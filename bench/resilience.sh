#!/usr/bin/env bash
# Resilience figures, served by the fault server (test/server/fault_server.py)
# on 127.0.0.1:
#   - a 1 GiB image whose connection drops 3 times (a close, a reset, a
#     stall): bytes the server sent divided by the image size (target: at most
#     1.1), the time against a clean run, and whether the result is
#     byte-identical;
#   - the time to fail on permanent errors (404, 403, an unknown host name, a
#     corrupt image), with the default retry settings (target: under 5 s);
#   - the time from SIGTERM to exit while the import waits on a stalled
#     connection and on a back-off (target: under 2 s);
#   - a qcow2 image of QCOW2_SIZE virtual bytes (default 2 GiB; plain, then
#     zlib-compressed) imported by the importer pod (cdi-importer, with its
#     default checkpoints, or one every QCOW2_EVERY bytes) and killed with
#     SIGKILL once it has downloaded 25%, 50% and 75% of the file, each time
#     started again as CDI does, the last run to the end: bytes the server
#     sent (ranged metadata included) divided by the file size (target: at
#     most 1.1), and the time of the four runs against an uninterrupted pod,
#     as it is and less what three restarts cost by themselves (a pod
#     importing a 1 MiB image; target: at most 1.15x).
#
#   bench/resilience.sh            (CDI_IMAGE=path/to/cdi-image to pick a build)
#   QCOW2_ONLY=1 QCOW2_SIZE=512M bench/resilience.sh   (the qcow2 part alone, smaller)
#
# The image is made once and kept in out/bench/resilience (BENCH_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${BENCH_DIR:-out/bench/resilience}
cdi_image=${CDI_IMAGE:-build/bin/cdi-image}
cdi_importer=${CDI_IMPORTER:-$(dirname "$cdi_image")/cdi-importer}
[ -x "$cdi_image" ] && [ -x "$cdi_importer" ] || scripts/build.sh
mkdir -p "$dir/www" "$dir/work"
image=$dir/www/disk.raw
size=$((1 << 30))

if [ -z "${QCOW2_ONLY:-}" ] && [ ! -f "$image" ]; then
  echo "making $image (1 GiB, random) ..."
  head -c "$size" /dev/urandom > "$image.tmp"
  mv "$image.tmp" "$image"
fi
# The corrupt image: a qcow2 cut short.
if [ -z "${QCOW2_ONLY:-}" ] && [ ! -f "$dir/www/bad.qcow2" ]; then
  head -c 64M "$image" > "$dir/small.raw"
  qemu-img convert -f raw -O qcow2 "$dir/small.raw" "$dir/www/bad.qcow2"
  truncate -s 8M "$dir/www/bad.qcow2"
  rm -f "$dir/small.raw"
fi
expected=
[ -n "${QCOW2_ONLY:-}" ] || expected=$(sha256sum "$image" | cut -d' ' -f1)
# The qcow2 images: a guest of random, base64 (compressible) and zero
# stretches of 64 MiB each, as qcow2 and as zlib-compressed qcow2.
qcow2_size=$(numfmt --from=iec "${QCOW2_SIZE:-2G}")
if [ ! -f "$dir/www/plain-$qcow2_size.qcow2" ]; then
  echo "making the qcow2 images ($qcow2_size bytes virtual) ..."
  guest=$dir/guest.raw
  : > "$guest"
  for ((i = 0; i < qcow2_size / (64 * 1048576); i++)); do
    case $((i % 3)) in
      0) head -c 64M /dev/urandom >> "$guest" ;;
      1) head -c 48M /dev/urandom | base64 -w 0 | head -c 64M >> "$guest" ;;
      2) truncate -s +64M "$guest" ;;
    esac
  done
  truncate -s "$qcow2_size" "$guest"
  qemu-img convert -q -f raw -O qcow2 "$guest" "$dir/www/plain-$qcow2_size.qcow2"
  qemu-img convert -q -c -f raw -O qcow2 "$guest" "$dir/www/zlib-$qcow2_size.qcow2"
  sha256sum "$guest" | cut -d' ' -f1 > "$dir/www/guest-$qcow2_size.sha256"
  rm -f "$guest"
fi

mib=$((1 << 20))
cat > "$dir/script.json" <<EOF
{"/drops.raw": {"file": "disk.raw", "close_after": $((256 * mib)), "times": 1,
   "then": {"file": "disk.raw", "reset_after": $((512 * mib)), "times": 1,
     "then": {"file": "disk.raw", "stall_after": $((768 * mib)), "times": 1}}},
 "/stall.raw": {"file": "disk.raw", "stall_after": $((64 * mib))},
 "/busy.raw": {"status": 503, "headers": {"Retry-After": "120"}},
 "/gone.raw": {"status": 404},
 "/forbidden.raw": {"status": 403}}
EOF
# The qcow2 images again, held at 25%, 50% and 75% of the file until the
# bench opens each gate.
rm -rf "$dir/gates"
mkdir -p "$dir/gates"
python3 - "$dir" "$qcow2_size" <<'PY'
import json, os, sys
folder, size = sys.argv[1], sys.argv[2]
script = json.load(open(f"{folder}/script.json"))
for kind in ("plain", "zlib"):
    name = f"{kind}-{size}.qcow2"
    length = os.path.getsize(f"{folder}/www/{name}")
    gates = [{"after": length * f // 100, "file": f"{folder}/gates/{kind}-{f}",
              "reached": f"{folder}/gates/{kind}-{f}.reached"} for f in (25, 50, 75)]
    script[f"/gated-{name}"] = {"file": name, "gate": gates}
json.dump(script, open(f"{folder}/script.json", "w"))
PY
rm -f "$dir/ports.json" "$dir/sent.jsonl"
python3 test/server/fault_server.py --root "$dir/www" --script "$dir/script.json" \
  --log "$dir/requests.jsonl" --sent-log "$dir/sent.jsonl" --ports-file "$dir/ports.json" \
  > "$dir/server.out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do [ -f "$dir/ports.json" ] && break; sleep 0.05; done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$dir/ports.json")
base="http://127.0.0.1:$port"
export no_proxy=127.0.0.1

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# sent PATH: body bytes the server sent for PATH, over all its responses.
sent() {
  python3 - "$dir/sent.jsonl" "$1" <<'PY'
import json, sys
total = 0
for line in open(sys.argv[1]):
    entry = json.loads(line)
    if entry["path"] == sys.argv[2]:
        total += entry["bytes"]
print(total)
PY
}

# import NAME URL [FLAGS...]: imports into a fresh file; prints the wall time.
import_once() {
  local url=$1; shift
  rm -rf "$dir/work"; mkdir -p "$dir/work"
  local start end code=0
  start=$(now)
  "$cdi_image" import "$url" "$dir/work/disk.img" --progress none "$@" \
    > "$dir/import.out" 2> "$dir/import.err" || code=$?
  end=$(now)
  echo "$(elapsed "$start" "$end") $code"
}

# The importer pod, cdi-importer, with CDI's environment, importing NAME into
# $dir/pod/data (a filesystem volume) with its default checkpoints
# (QCOW2_EVERY overrides --checkpoint-every), in the background: pod_pid.
start_pod() {
  mkdir -p "$dir/pod/data"
  env -u IMPORTER_CHECKSUM IMPORTER_SOURCE=http IMPORTER_ENDPOINT="$base/$1" \
    IMPORTER_CONTENTTYPE=kubevirt OWNER_UID=bench-resilience \
    "$cdi_importer" --data-dir "$dir/pod/data" --block-device "$dir/pod/no-block-device" \
    --scratch-dir "$dir/pod/no-scratch" --termination-log "$dir/pod/termination-log" \
    --metrics-address 127.0.0.1:0 --handover-program "$dir/pod/no-handover" \
    ${QCOW2_EVERY:+--checkpoint-every "$QCOW2_EVERY"} -v=1 > /dev/null 2>> "$dir/killed.err" &
  pod_pid=$!
}

# clean_pod NAME: an uninterrupted pod import of NAME; prints the wall time.
clean_pod() {
  rm -rf "$dir/pod"
  : > "$dir/killed.err"
  local start end
  start=$(now)
  start_pod "$1"
  wait $pod_pid || { tail -5 "$dir/killed.err" >&2; return 1; }
  end=$(now)
  elapsed "$start" "$end"
}

# killed_qcow2 KIND: the qcow2 image of KIND imported by the pod from
# /gated-KIND..., where the server holds the download at 25%, 50% and 75% of
# the file (a gate each, test/server/fault_server.py); each time the pod has
# downloaded up to a gate, it is killed with SIGKILL and started again, as
# CDI starts a pod again, the gate opened; the last run goes to the end.
# Prints: seconds (the runs' own time: from each start to its gate, and the
# last run), identical (yes/no), runs.
killed_qcow2() {
  local kind=$1 name=gated-$1-$qcow2_size.qcow2
  local total=0 start reached runs=0 code=0
  rm -rf "$dir/pod"
  : > "$dir/killed.err"
  for fraction in 25 50 75; do
    [ -f "$dir/pod/data/disk.img" ] && break  # a run finished before its gate
    start=$(now)
    start_pod "$name"
    runs=$((runs + 1))
    while kill -0 $pod_pid 2>/dev/null && [ ! -f "$dir/gates/$kind-$fraction.reached" ]; do
      sleep 0.005
    done
    reached=$(now)
    kill -KILL $pod_pid 2>/dev/null || true
    wait $pod_pid 2>/dev/null || true
    total=$(python3 -c "print($total + $reached - $start)")
    touch "$dir/gates/$kind-$fraction"
  done
  if [ ! -f "$dir/pod/data/disk.img" ]; then
    start=$(now)
    start_pod "$name"
    wait $pod_pid || code=$?
    runs=$((runs + 1))
    total=$(python3 -c "print($total + $(now) - $start)")
  fi
  [ "$code" -eq 0 ] || { tail -5 "$dir/killed.err" >&2; }
  local identical=no
  [ "$(sha256sum "$dir/pod/data/disk.img" | cut -d' ' -f1)" = "$(cat "$dir/www/guest-$qcow2_size.sha256")" ] &&
    identical=yes
  echo "$(python3 -c "print(f'{$total:.2f}')") $identical $runs"
}

# What a restart costs by itself: a pod that imports a 1 MiB image (its
# start, its metrics server's certificate, the connection), the best of 3.
[ -f "$dir/www/tiny.raw" ] || head -c 1M /dev/urandom > "$dir/www/tiny.raw"
pod_start=
for _ in 1 2 3; do
  t=$(clean_pod tiny.raw)
  pod_start=$(python3 -c "print(min(float('${pod_start:-1e9}'), $t))")
done
echo "::: a pod's own cost (1 MiB image): $pod_start s"

declare -A q_clean q_killed q_sent q_identical q_ratio q_time_ratio q_net_ratio
for kind in plain zlib; do
  name=$kind-$qcow2_size.qcow2
  echo "::: $name: the pod uninterrupted, then killed at 25%, 50% and 75% of the download"
  q_clean[$kind]=$(clean_pod "$name")
  grep -E "checkpoints written" "$dir/killed.err" | sed 's/^/    uninterrupted: /'
  read -r q_killed[$kind] q_identical[$kind] runs < <(killed_qcow2 "$kind")
  sleep 0.5  # the last response is logged once it has ended
  q_sent[$kind]=$(sent "/gated-$name")
  q_ratio[$kind]=$(python3 -c "print(f'{${q_sent[$kind]} / $(stat -c %s "$dir/www/$name"):.4f}')")
  q_time_ratio[$kind]=$(python3 -c "print(f'{${q_killed[$kind]} / ${q_clean[$kind]}:.3f}')")
  q_net_ratio[$kind]=$(python3 -c \
    "print(f'{(${q_killed[$kind]} - ($runs - 1) * $pod_start) / ${q_clean[$kind]}:.3f}')")
  grep -E "Found a checkpoint|Fetched the qcow2|checkpoints written" "$dir/killed.err" |
    sed 's/.*\] //; s/^/    /'
  echo "    $runs runs"
done
if [ -n "${QCOW2_ONLY:-}" ]; then
  echo
  echo "figure                                         value        target"
  for kind in plain zlib; do
    printf "%-46s %-12s %s\n" "$kind qcow2, bytes sent / file, 3 kills" "${q_ratio[$kind]}" "<= 1.1"
    printf "%-46s %-12s %s\n" "$kind qcow2, time 4 runs / uninterrupted" "${q_time_ratio[$kind]}" ""
    printf "%-46s %-12s %s\n" "$kind qcow2, same less 3 pod starts" "${q_net_ratio[$kind]}" "<= 1.15"
    printf "%-46s %-12s %s\n" "$kind qcow2, time uninterrupted (s)" "${q_clean[$kind]}" ""
    printf "%-46s %-12s %s\n" "$kind qcow2, byte-identical after 3 kills" "${q_identical[$kind]}" "yes"
  done
  exit 0
fi

echo "::: clean 1 GiB import"
read -r clean_time clean_code < <(import_once "$base/disk.raw")
[ "$clean_code" -eq 0 ] || { cat "$dir/import.err"; exit 1; }

echo "::: 1 GiB import with 3 drops (close at 256 MiB, reset at 512 MiB, stall at 768 MiB)"
read -r drops_time drops_code < <(import_once "$base/drops.raw" --stall-timeout 2 --retry-delay 0.2 -v)
[ "$drops_code" -eq 0 ] || { cat "$dir/import.err"; exit 1; }
identical=no
[ "$(sha256sum "$dir/work/disk.img" | cut -d' ' -f1)" = "$expected" ] && identical=yes
sleep 0.5  # the last response is logged once it has ended
drops_sent=$(sent /drops.raw)
ratio=$(python3 -c "print(f'{$drops_sent / $size:.4f}')")
requests=$(grep -c '"/drops.raw"' "$dir/requests.jsonl")
grep -E "warning|Downloaded" "$dir/import.err" | sed 's/^/    /'

echo "::: time to fail on permanent errors (default retries: 5, first back-off 1 s)"
declare -A fail_time fail_code
for case in gone forbidden dns corrupt; do
  case $case in
    gone) url=$base/gone.raw ;;
    forbidden) url=$base/forbidden.raw ;;
    dns) url=http://no-such-host.invalid/disk.raw ;;
    corrupt) url=$base/bad.qcow2 ;;
  esac
  read -r fail_time[$case] fail_code[$case] < <(import_once "$url")
  echo "    $case: exit ${fail_code[$case]} after ${fail_time[$case]} s: $(tail -1 "$dir/import.err")"
done

echo "::: time from SIGTERM to exit"
declare -A cancel_time cancel_code
for case in stall backoff; do
  rm -rf "$dir/work"; mkdir -p "$dir/work"
  url=$base/stall.raw
  [ "$case" = backoff ] && url=$base/busy.raw
  "$cdi_image" import "$url" "$dir/work/disk.img" --progress none --stall-timeout 300 \
    > "$dir/cancel.out" 2> "$dir/cancel.err" &
  pid=$!
  sleep 2  # under way: stalled after 64 MiB, or waiting out Retry-After: 120
  start=$(now)
  kill -TERM $pid
  code=0
  wait $pid || code=$?
  end=$(now)
  cancel_time[$case]=$(elapsed "$start" "$end")
  cancel_code[$case]=$code
  left=$(ls -A "$dir/work" | wc -l)
  echo "    $case: exit $code after ${cancel_time[$case]} s, $left files left: $(tail -1 "$dir/cancel.err")"
done

echo
echo "figure                                         value        target"
printf "%-46s %-12s %s\n" "bytes sent / image size, 3 drops" "$ratio" "<= 1.1"
printf "%-46s %-12s %s\n" "requests, 3 drops" "$requests" "4"
printf "%-46s %-12s %s\n" "byte-identical after 3 drops" "$identical" "yes"
printf "%-46s %-12s %s\n" "time, clean import (s)" "$clean_time" ""
printf "%-46s %-12s %s\n" "time, 3 drops incl. a 2 s stall window (s)" "$drops_time" ""
for case in gone forbidden dns corrupt; do
  printf "%-46s %-12s %s\n" "time to fail, $case (s)" "${fail_time[$case]}" "< 5"
done
for case in stall backoff; do
  printf "%-46s %-12s %s\n" "SIGTERM to exit, $case (s)" "${cancel_time[$case]}" "< 2"
done
for kind in plain zlib; do
  printf "%-46s %-12s %s\n" "$kind qcow2, bytes sent / file, 3 kills" "${q_ratio[$kind]}" "<= 1.1"
  printf "%-46s %-12s %s\n" "$kind qcow2, time 4 runs / uninterrupted" "${q_time_ratio[$kind]}" ""
  printf "%-46s %-12s %s\n" "$kind qcow2, same less 3 pod starts" "${q_net_ratio[$kind]}" "<= 1.15"
  printf "%-46s %-12s %s\n" "$kind qcow2, byte-identical after 3 kills" "${q_identical[$kind]}" "yes"
done
