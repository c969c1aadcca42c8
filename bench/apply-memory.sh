#!/usr/bin/env bash
# Peak memory of `cdi-image apply` against the number of disks it writes: a
# VirtualMachinePool of 1, 8, 32 and 128 replicas whose DataSource points at
# a raw image served by nginx on 127.0.0.1. Every replica shares the one
# download, so the image is read once and written REPLICAS times. Prints the
# peak RSS (/usr/bin/time -v, "Maximum resident set size") of each run, for
# the default memory budget and for each MEMORY given.
#
#   bench/apply-memory.sh [REPLICAS...]        (default: 1 8 32 128)
#
# Environment: BENCH_IMAGE_MIB (size of the image, default 32: 128 replicas
# write 4 GiB), BENCH_MEMORY (space-separated --memory values to try besides
# the default, e.g. "16Mi 256Mi"), BENCH_DIR (default out/bench-apply),
# CDI_IMAGE (the binary, default build/bin/cdi-image).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/nginx.sh

replicas=("$@")
[ ${#replicas[@]} -gt 0 ] || replicas=(1 8 32 128)
image_mib=${BENCH_IMAGE_MIB:-32}
dir=${BENCH_DIR:-out/bench-apply}
cdi=${CDI_IMAGE:-build/bin/cdi-image}
memories=("" ${BENCH_MEMORY:-})

if ! [ -x /usr/bin/time ]; then
  apt-get install -y --no-install-recommends time >/dev/null
fi
[ -x "$cdi" ] || scripts/build.sh
mkdir -p "$dir/images"
if [ ! -f "$dir/images/disk.raw" ] || [ "$(stat -c %s "$dir/images/disk.raw")" -ne $((image_mib << 20)) ]; then
  head -c "${image_mib}M" /dev/urandom > "$dir/images/disk.raw"
fi

trap nginx_stop EXIT
nginx_start "$dir/images"

# pool N: a VirtualMachinePool of N replicas and its DataSource.
pool() {
  cat <<YAML
apiVersion: kubevirt.io/v1alpha1
kind: VirtualMachinePool
metadata:
  name: bench-pool
spec:
  replicas: $1
  selector:
    matchLabels:
      app: bench-pool-member
  virtualMachineTemplate:
    metadata:
      labels:
        app: bench-pool-member
    spec:
      dataVolumeTemplates:
        - metadata:
            name: bench-disk
          spec:
            sourceRef:
              kind: DataSource
              name: bench-image
            storage:
              resources:
                requests:
                  storage: ${image_mib}Mi
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataSource
metadata:
  name: bench-image
spec:
  source:
    http:
      url: "$NGINX_URL/disk.raw"
YAML
}

printf '%-9s %-8s %14s %10s\n' replicas memory "peak RSS MiB" "wall s"
for memory in "${memories[@]}"; do
  for n in "${replicas[@]}"; do
    pool "$n" > "$dir/pool.yaml"
    rm -rf "$dir/pvcs"; mkdir -p "$dir/pvcs"
    flags=(--progress none --output json)
    [ -n "$memory" ] && flags+=(--memory "$memory")
    if ! /usr/bin/time -v -o "$dir/time.txt" "$cdi" apply -f "$dir/pool.yaml" \
        --pvc-dir "$dir/pvcs" --filesystem-overhead 0 "${flags[@]}" > "$dir/out.json" 2> "$dir/err.txt"; then
      echo "FAILED: apply of $n replicas" >&2
      cat "$dir/err.txt" >&2
      exit 1
    fi
    kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.txt")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.txt")
    printf '%-9s %-8s %14.1f %10s\n' "$n" "${memory:-default}" "$(echo "$kib / 1024" | bc -l)" "$wall"
  done
done
rm -rf "$dir/pvcs"
