#!/usr/bin/env bash
# Registry import benchmark: a qcow2 containerDisk (BENCH_SIZE virtual,
# default 2 GiB, half of it data that compresses about 2:1) in a local
# docker-registry (plain HTTP on 127.0.0.1), its layer compressed with
# BENCH_LAYER (gzip, the default as containerDisks ship; zstd; none), imported
#   ours:  cdi-image import docker://... --insecure   (one pass, layer -> tar ->
#          qcow2 -> target, nothing stored)
#   CDI's: skopeo copy docker://... dir:  (the layers to scratch), tar -x of the
#          disk (extract), qemu-img convert -O raw (convert)
# onto BENCH_WORK (default a directory on /dev/shm). Prints the median wall
# time of BENCH_RUNS runs (default 3), the peak RSS of ours (GNU time), and
# ours / CDI's ratio; both outputs are compared once (cmp).
#
#   bench/registry.sh
#
# Needs docker-registry, skopeo, qemu-img and /usr/bin/time (Debian's
# docker-registry, skopeo, qemu-utils, time). The image is made once and kept
# in out/bench (BENCH_DIR to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
size=${BENCH_SIZE:-2G}
layer=${BENCH_LAYER:-gzip}
dir=${BENCH_DIR:-out/bench}
images=$dir/registry-$size-$layer
work=${BENCH_WORK:-/dev/shm/cdi-bench-registry.$$}

for tool in docker-registry skopeo qemu-img /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done
[ -x build/bin/cdi-image ] || scripts/build.sh
mkdir -p "$images" "$work"
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The disk: 64 slots, half of them data, as a qcow2; then an OCI layout with
# it as disk/disk.qcow2 in one layer.
if [ ! -f "$images/layout/index.json" ]; then
  echo "making the containerDisk ($size virtual, $layer layer) in $images ..."
  python3 - "$images/source.raw" "$(numfmt --from=iec "$size")" <<'PY'
import os, random, sys
random.seed(11)
size = int(sys.argv[2])
slot = size // 64
with open(sys.argv[1], "wb") as f:
    f.truncate(size)
    for s in sorted(random.sample(range(64), 32)):
        f.seek(s * slot)
        left = slot
        while left:
            n = min(left, 1 << 20)
            f.write(b"".join(os.urandom(2048) + bytes(2048) for _ in range(n // 4096)))
            left -= n
PY
  qemu-img convert -f raw -O qcow2 "$images/source.raw" "$images/disk.qcow2"
  rm "$images/source.raw"
  python3 - "$images" "$layer" <<'PY'
import hashlib, io, json, os, subprocess, sys, tarfile
root, layer = sys.argv[1], sys.argv[2]
layout = os.path.join(root, "layout")
os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
def blob(path_or_bytes):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else None
    h = hashlib.sha256()
    if data is None:
        with open(path_or_bytes, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        size = os.path.getsize(path_or_bytes)
        os.rename(path_or_bytes, os.path.join(layout, "blobs", "sha256", h.hexdigest()))
    else:
        h.update(data)
        size = len(data)
        with open(os.path.join(layout, "blobs", "sha256", h.hexdigest()), "wb") as f:
            f.write(data)
    return "sha256:" + h.hexdigest(), size
tar_path = os.path.join(root, "layer.tar")
with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as t:
    info = tarfile.TarInfo("disk")
    info.type = tarfile.DIRTYPE
    info.mode = 0o555
    t.addfile(info)
    t.add(os.path.join(root, "disk.qcow2"), arcname="disk/disk.qcow2")
media = "application/vnd.oci.image.layer.v1.tar"
if layer == "gzip":
    subprocess.run(["gzip", "-n", "-f", tar_path], check=True)
    tar_path += ".gz"
    media += "+gzip"
elif layer == "zstd":
    subprocess.run(["zstd", "-q", "-T0", "--rm", "-f", tar_path], check=True)
    tar_path += ".zst"
    media += "+zstd"
layer_digest, layer_size = blob(tar_path)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()
config_digest, config_size = blob(config)
manifest = json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": media, "digest": layer_digest, "size": layer_size}]}).encode()
manifest_digest, manifest_size = blob(manifest)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
PY
fi
qemu-img convert -O raw "$images/disk.qcow2" "$work/expected.raw" 2>/dev/null || true

# The registry.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<EOF2
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
EOF2
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$images/layout:bench" \
  "docker://127.0.0.1:$port/bench/disk:1"
ref="docker://127.0.0.1:$port/bench/disk:1"
layer_bytes=$(stat -c %s "$images"/layout/blobs/sha256/* | sort -n | tail -1)
echo "::: $ref: $(numfmt --to=iec "$layer_bytes") $layer layer, $size virtual qcow2"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

ours=() theirs=() rss=()
for run in $(seq "$runs"); do
  rm -f "$work/ours.img"
  start=$(now)
  /usr/bin/time -f '%M' -o "$work/time" build/bin/cdi-image import "$ref" "$work/ours.img" \
    --insecure -q
  ours+=("$(echo "$(now) - $start" | bc)")
  rss+=("$(cat "$work/time")")

  rm -rf "$work/copy" "$work/scratch" "$work/theirs.img"
  start=$(now)
  skopeo --insecure-policy copy --quiet --src-tls-verify=false "$ref" "dir:$work/copy"
  mkdir -p "$work/scratch"
  blob=$(ls -S "$work/copy" | head -1)
  tar -xf "$work/copy/$blob" -C "$work/scratch" disk
  qemu-img convert -t writeback -O raw "$work/scratch/disk/disk.qcow2" "$work/theirs.img"
  theirs+=("$(echo "$(now) - $start" | bc)")
  echo "run $run: ours ${ours[-1]} s (peak RSS $((rss[-1] / 1024)) MiB), skopeo+extract+convert ${theirs[-1]} s"
done
cmp "$work/ours.img" "$work/theirs.img" && echo "outputs identical"
o=$(printf '%s\n' "${ours[@]}" | median)
t=$(printf '%s\n' "${theirs[@]}" | median)
r=$(printf '%s\n' "${rss[@]}" | median)
echo "::: median: ours $o s, CDI's path $t s, ratio $(echo "scale=2; $o / $t" | bc), ours' peak RSS $((r / 1024)) MiB"
