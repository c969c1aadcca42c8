#!/usr/bin/env bash
# The demo: installs the Debian packages, builds, makes a small disk image
# (an ext4 filesystem, as a compressed qcow2), serves it from nginx on
# 127.0.0.1, imports it with cdi-image, and checks the result with qemu-img.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh
. scripts/lib/nginx.sh

work=out/demo
rm -rf "$work"
mkdir -p "$work/content" "$work/www"
trap nginx_stop EXIT

echo "== Making a demo image: 256 MiB ext4 filesystem, compressed qcow2"
cp README.md "$work/content/"
head -c 8M /dev/urandom > "$work/content/random.bin"
truncate -s 256M "$work/demo.raw"
mkfs.ext4 -q -F -d "$work/content" "$work/demo.raw"
qemu-img convert -c -f raw -O qcow2 "$work/demo.raw" "$work/www/demo.qcow2"
ls -l "$work/www/demo.qcow2"

nginx_start "$work/www"
echo "== Serving it at $NGINX_URL/demo.qcow2"
build/bin/cdi-image info "$NGINX_URL/demo.qcow2"

echo "== Importing it into $work/disk.img (requested size 1Gi)"
build/bin/cdi-image import "$NGINX_URL/demo.qcow2" "$work/disk.img" --size 1Gi

echo "== Checking: the guest's first 256 MiB equal the original, the rest reads zero"
qemu-img compare -f raw -F raw "$work/demo.raw" "$work/disk.img"
du -h --apparent-size "$work/disk.img" | sed 's/^/apparent size: /'
du -h "$work/disk.img" | sed 's/^/allocated:     /'
echo "Demo complete."
