#!/bin/sh
# Writes a seed corpus for qcow2_fuzz into DIR: small qcow2 images made with
# qemu-img and qemu-io, in the layouts the decoder handles, each prefixed
# with the two option bytes qcow2_fuzz.cc reads (options, chunk seed).
# Usage: test/fuzz/make_qcow2_seeds.sh DIR
set -eu
out=${1:?usage: $0 DIR}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

img() { qemu-img create -q -f qcow2 -o "$1" "$work/$2.qcow2" "$3"; }
io() { name=$1; shift; qemu-io -f qcow2 "$@" "$work/$name.qcow2" >/dev/null; }

# A little raw disk with text (compressible) and a hole.
{ seq 1 900; } > "$work/disk.raw"
truncate -s 64K "$work/disk.raw"

img cluster_size=512 empty 64K
img cluster_size=512 plain 64K
io plain -c 'write -P 0x11 0 3k' -c 'write -P 0x22 40k 1k' -c 'write -z 1k 512'
img cluster_size=512,compat=0.10 v2 64K
io v2 -c 'write -P 0x33 8k 2k'
qemu-img convert -c -O qcow2 -o cluster_size=512 "$work/disk.raw" "$work/zlib.qcow2"
qemu-img convert -c -O qcow2 -o cluster_size=512,compression_type=zstd "$work/disk.raw" "$work/zstd.qcow2"
img cluster_size=512 shuffled 64K
io shuffled -c 'write -P 1 30k 1k' -c 'write -P 2 2k 512' -c 'write -c -P 3 50k 512' -c 'write -P 4 0 512'
img cluster_size=512 resized 32K
io resized -c 'write -P 0x44 0 4k'
qemu-img resize -q -f qcow2 "$work/resized.qcow2" 256K
img cluster_size=512 snapshot 64K
io snapshot -c 'write -P 0x55 0 4k'
qemu-img snapshot -c s "$work/snapshot.qcow2"
io snapshot -c 'write -P 0x66 1k 1k'
img cluster_size=16k,extended_l2=on extended 256K
io extended -c 'write -P 0x77 2k 1k' -c 'write -z 8k 1k'

for f in "$work"/*.qcow2; do
  name=$(basename "$f" .qcow2)
  for flags in 00 05 0e; do
    { printf "\\$(printf %o 0x$flags)\\$(printf %o 0x2a)"; cat "$f"; } > "$out/$name-$flags"
  done
done
ls "$out" | wc -l
