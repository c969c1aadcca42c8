#!/usr/bin/env bash
# Upload benchmark: a compressed qcow2 (BENCH_SIZE virtual, default 2 GiB,
# BENCH_DATA of it data, default 512 MiB of compressible text in scattered
# runs) uploaded from localhost over HTTPS with a client certificate, by
#   ours: cdi-uploadserver, POST /v1beta1/upload (decoded while it arrives,
#         answered once the raw disk is written and flushed)
#   CDI's path: the body received to a scratch file by a minimal HTTPS
#         receiver (python3's ssl), then `qemu-img convert -t writeback -O raw`
#         as CDI's upload server runs it
# onto BENCH_WORK (default a directory on /dev/shm, so the disk does not
# count). Prints the median wall time of BENCH_RUNS runs (default 3) of each,
# ours / CDI's ratio, and the upload server's peak RSS; the disk written is
# compared with qemu-img's conversion once (cmp). UPLOADSERVER names another
# cdi-uploadserver binary to measure (default build/bin/cdi-uploadserver).
#
#   bench/upload.sh
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
size=${BENCH_SIZE:-2G}
data_mib=${BENCH_DATA:-512}
dir=${BENCH_DIR:-out/bench}
images=$dir/upload-$size-$data_mib
work=${BENCH_WORK:-/dev/shm/cdi-bench-upload.$$}
port=${BENCH_PORT:-18443}

for tool in qemu-img qemu-io curl openssl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done
server_bin=${UPLOADSERVER:-build/bin/cdi-uploadserver}
[ -x "$server_bin" ] || scripts/build.sh
mkdir -p "$images" "$work"
trap 'rm -rf "$work"' EXIT

if [ ! -f "$images/disk.qcow2" ]; then
  echo "making $images/disk.qcow2 ($size virtual, $data_mib MiB of data, compressed)"
  qemu-img create -q -f qcow2 "$images/plain.qcow2" "$size"
  head -c $((data_mib * 3 / 4 * 1024 * 1024)) /dev/urandom | base64 -w 0 >"$images/text"
  virtual=$(qemu-img info --output=json "$images/plain.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
  # 1 MiB runs of the text, spread over the disk.
  step=$((virtual / data_mib / 1048576 * 1048576))
  python3 - "$images/text" "$images/plain.qcow2" "$data_mib" "$step" <<'PY'
import subprocess, sys
text, image, count, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(text, "rb") as f:
    data = f.read()
raw = image + ".raw"
subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", image, raw], check=True)
with open(raw, "r+b") as out:
    for i in range(count):
        out.seek(i * step)
        out.write(data[i * 1048576:(i + 1) * 1048576])
PY
  qemu-img convert -q -c -f raw -O qcow2 "$images/plain.qcow2.raw" "$images/disk.qcow2"
  mv "$images/plain.qcow2.raw" "$images/disk.raw"
  rm -f "$images/plain.qcow2" "$images/text"
fi
ls -l "$images/disk.qcow2"

certs=$work/certs
mkdir -p "$certs"
(
  cd "$certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj "/CN=bench CA" -days 1 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile ext 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj "/CN=cdi-uploadproxy" 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1 2>/dev/null
)
curl_upload() {
  curl -sS -o /dev/null -w '%{http_code}' --cacert "$certs/ca.pem" --cert "$certs/client.pem" \
    --key "$certs/client.key" --data-binary @"$images/disk.qcow2" "$1"
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $port" >&2
  exit 1
}

ours() {
  rm -rf "$work/pvc" && mkdir -p "$work/pvc"
  LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT=$port TLS_KEY_FILE=$certs/server.key \
  TLS_CERT_FILE=$certs/server.pem CLIENT_CERT_FILE=$certs/ca.pem CLIENT_NAME=cdi-uploadproxy \
    /usr/bin/time -f '%M' -o "$work/rss" "$server_bin" --data-dir "$work/pvc" \
    --termination-log "$work/termination" 2>"$work/server.log" &
  local server=$!
  wait_port
  local start end code
  start=$(date +%s.%N)
  code=$(curl_upload "https://localhost:$port/v1beta1/upload")
  end=$(date +%s.%N)
  wait "$server"
  [ "$code" = 200 ] || { echo "upload answered $code" >&2; cat "$work/server.log" >&2; exit 1; }
  echo "$end - $start" | bc
}

cdi_path() {
  rm -rf "$work/pvc" "$work/scratch" && mkdir -p "$work/pvc" "$work/scratch"
  python3 - "$port" "$certs" "$work/scratch/tmpimage" <<'PY' &
import socket, ssl, sys
port, certs, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(certs + "/server.pem", certs + "/server.key")
ctx.load_verify_locations(certs + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
with socket.create_server(("127.0.0.1", port)) as sock:
    open(out + ".listening", "w").close()
    conn, _ = sock.accept()
    with ctx.wrap_socket(conn, server_side=True) as tls:
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(65536)
        header, body = head.split(b"\r\n\r\n", 1)
        length = next(int(l.split(b":")[1]) for l in header.split(b"\r\n") if l.lower().startswith(b"content-length"))
        if b"100-continue" in header.lower():
            tls.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        with open(out, "wb") as f:
            f.write(body)
            left = length - len(body)
            while left > 0:
                chunk = tls.recv(min(left, 1 << 20))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
PY
  local receiver=$!
  for _ in $(seq 100); do [ -f "$work/scratch/tmpimage.listening" ] && break; sleep 0.1; done
  local start end code
  start=$(date +%s.%N)
  code=$(curl_upload "https://localhost:$port/v1beta1/upload")
  wait "$receiver"
  qemu-img convert -t writeback -f qcow2 -O raw "$work/scratch/tmpimage" "$work/pvc/disk.img"
  sync -f "$work/pvc/disk.img"
  end=$(date +%s.%N)
  [ "$code" = 200 ] || { echo "receiver answered $code" >&2; exit 1; }
  echo "$end - $start" | bc
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

ours_times=()
cdi_times=()
for _ in $(seq "$runs"); do
  ours_times+=("$(ours)")
  cdi_times+=("$(cdi_path)")
done
ours
cmp "$work/pvc/disk.img" "$images/disk.raw" && echo "ours: byte-identical to qemu-img's raw"
ours_median=$(printf '%s\n' "${ours_times[@]}" | median)
cdi_median=$(printf '%s\n' "${cdi_times[@]}" | median)
printf 'upload of %s (%s bytes), %s runs\n' "$images/disk.qcow2" "$(stat -c %s "$images/disk.qcow2")" "$runs"
printf '  ours (cdi-uploadserver):             %6.2f s  (runs: %s)\n' "$ours_median" "${ours_times[*]}"
printf '  CDI path (receive, qemu-img convert): %6.2f s  (runs: %s)\n' "$cdi_median" "${cdi_times[*]}"
printf '  ratio ours / CDI: %.2f\n' "$(echo "$ours_median / $cdi_median" | bc -l)"
printf '  peak RSS of cdi-uploadserver: %s KiB\n' "$(cat "$work/rss")"
