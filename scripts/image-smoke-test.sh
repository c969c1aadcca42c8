#!/usr/bin/env bash
# The importer image's smoke test: every binary in it starts, and a tiny
# built-in image goes the way of a registry node-pull import, inside the
# image, as uid 107: cdi-containerimage-server serves it, cdi-importer (with
# CDI's environment and klog flags) imports it into a temporary directory,
# and cdi-image-size-detection reads its virtual size. For the overlay image
# (--overlay), CDI's programs start through their launchers too.
#
#   scripts/image-smoke-test.sh [--overlay] ENGINE IMAGE
#
# ENGINE is podman or docker. Exit 0 when everything passed, 1 otherwise,
# 2 for bad usage. Run by scripts/build-image.sh after a build.
set -euo pipefail

overlay=no
if [ "${1:-}" = --overlay ]; then
  overlay=yes
  shift
fi
if [ $# -ne 2 ]; then
  echo "usage: $0 [--overlay] ENGINE IMAGE" >&2
  exit 2
fi
engine=$1
image=$2
# Settings the host may need (podman in a sandbox: --runtime runc).
engine_flags=(${IMAGE_ENGINE_FLAGS:-})
run=("$engine" "${engine_flags[@]}" run --rm --network none)

failed=0
check() {  # check NAME COMMAND...: runs it, reports, remembers a failure
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok   $name: $(echo "$out" | tail -n1)"
  else
    echo "FAIL $name:" >&2
    echo "$out" | sed 's/^/     /' >&2
    failed=1
  fi
}

echo "::: $image: every binary starts"
check "cdi-importer --version" "${run[@]}" --entrypoint /usr/bin/cdi-importer "$image" --version
check "cdi-image version" "${run[@]}" --entrypoint /usr/bin/cdi-image "$image" version
for helper in cdi-containerimage-server cdi-image-size-detection cdi-source-update-poller; do
  check "$helper -version" "${run[@]}" --entrypoint /usr/bin/$helper "$image" -version
done
check "the image runs as uid 107" "${run[@]}" --entrypoint /usr/bin/id "$image" -u
check "sh and cp, for CDI's init container" "${run[@]}" --entrypoint sh "$image" -c \
  'cp /usr/bin/cdi-containerimage-server /tmp/server && /tmp/server -h 2>&1 | head -n1'

echo "::: $image: a node-pull import of a tiny qcow2.xz, inside the image"
# 1 MiB of virtual size, three written ranges; the raw disk's sha256 below.
check "serve, import, measure" "${run[@]}" --tmpfs /tmp:rw,mode=1777 --entrypoint sh "$image" -euc '
d=$(mktemp -d)
mkdir "$d/disk" "$d/data" "$d/shared"
base64 -d > "$d/disk/tiny.qcow2.xz" <<EOF
/Td6WFoAAATm1rRGAgAhARwAAAAQz1jM4I//AI5dACiRhVzYhNkaVV/JmBawK6/xxZTmXst/ttT5
Rm0brySYAWbcIjA+d83Qm99aTtIf3OKMwPFAs9m6clVHH3lnCUn70oAKewjuboXcRhlIAqOhZbCL
441lU4SwzJsP9mrsG72pJACo48MgnTq/QDvutDTBcIz96ohd3F/Kp2Kxb1uGJclBmfF4VWsd9Jsz
q4cAAAAORDUy7mHAEAABqgGAoAIAPEalQLHEZ/sCAAAAAARZWg==
EOF
cdi-containerimage-server -p 8100 -image-dir "$d/disk" -ready-file "$d/shared/ready" \
  -done-file "$d/shared/done" > "$d/server.log" 2>&1 &
for i in $(seq 50); do [ -s "$d/shared/ready" ] && break; sleep 0.2; done
[ -s "$d/shared/ready" ] || { cat "$d/server.log"; exit 1; }
IMPORTER_SOURCE=http IMPORTER_ENDPOINT="http://localhost:8100/$(cat "$d/shared/ready")" \
IMPORTER_CONTENTTYPE=kubevirt IMPORTER_IMAGE_SIZE=1Mi FILESYSTEM_OVERHEAD=0 PREALLOCATION=false \
OWNER_UID=smoke cdi-importer -alsologtostderr -v=1 --data-dir "$d/data" \
  --termination-log "$d/termination-log" --metrics-address 127.0.0.1:0 2> "$d/importer.log" \
  || { cat "$d/importer.log"; exit 1; }
touch "$d/shared/done"
wait
grep -q "\"message\":\"Import Complete\"" "$d/termination-log" || { cat "$d/termination-log"; exit 1; }
echo "ded9dcafd624c27509dad5ecc4c3ec9c1aa33261070e846aa22f36b99a7f2f78  $d/data/disk.img" | sha256sum -c --quiet
cdi-image-size-detection -image-path "$d/disk/tiny.qcow2.xz" -termination-log "$d/size" 2>/dev/null
[ "$(cat "$d/size")" = 1048576 ] || { echo "size: $(cat "$d/size")"; exit 1; }
echo "imported $(stat -c %s "$d/data/disk.img") bytes, sha256 matches; virtual size $(cat "$d/size")"
'

if [ "$overlay" = yes ]; then
  echo "::: $image: CDI's programs start on their own C library"
  for program in cdi-importer cdi-source-update-poller; do
    check "CDI's $program -h" "${run[@]}" --entrypoint sh "$image" -c \
      "/usr/libexec/cdi/$program -h 2>&1 | head -n3; exit 0"
    check "CDI's $program loads" "${run[@]}" --entrypoint sh "$image" -c \
      "/usr/libexec/cdi/$program -h 2>&1 | grep -q 'Usage of' && echo started"
  done
  check "a gcs pod is handed over" "${run[@]}" -e IMPORTER_SOURCE=gcs \
    -e IMPORTER_ENDPOINT=gs://bucket/disk.img --entrypoint sh "$image" -c \
    '/usr/bin/cdi-importer -alsologtostderr -v=1 --termination-log /tmp/t 2>&1 | grep -m1 "handing the pod over"'
  for tool in qemu-img nbdkit; do
    check "$tool for CDI's importer" "${run[@]}" --entrypoint $tool "$image" --version
  done
fi

if [ "$failed" = 0 ]; then
  echo "::: smoke test of $image passed"
else
  echo "::: smoke test of $image FAILED" >&2
fi
exit "$failed"
