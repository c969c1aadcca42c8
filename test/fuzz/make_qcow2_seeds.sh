#!/bin/sh
# Writes a seed corpus for qcow2_fuzz into DIR: small qcow2 images made with
# qemu-img and qemu-io, in the layouts the decoder handles and hostile ones, each prefixed
# with the two option bytes qcow2_fuzz.cc reads (options, chunk seed).
# Usage: test/fuzz/make_qcow2_seeds.sh DIR [--all]
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
# Extended L2 needs 16 KiB clusters, which makes the image 80 KiB: not kept in
# the committed corpus (test/fuzz/README.md), written with --all.
if [ "${2:-}" = --all ]; then
  img cluster_size=16k,extended_l2=on extended 256K
  io extended -c 'write -P 0x77 2k 1k' -c 'write -z 8k 1k'
fi

# Hostile: a backing file, the corrupt bit, an image cut short, an L2 entry
# that maps a guest cluster onto the L1 table, an L1 entry past any image.
img cluster_size=512,backing_file=plain.qcow2,backing_fmt=qcow2 backing 64K
cp "$work/plain.qcow2" "$work/corrupt.qcow2"
printf '\002' | dd of="$work/corrupt.qcow2" bs=1 seek=79 conv=notrunc status=none
head -c 3000 "$work/plain.qcow2" > "$work/truncated.qcow2"
cp "$work/plain.qcow2" "$work/l2-at-l1.qcow2"
l1=$(od -An -tu8 --endian=big -j 40 -N 8 "$work/plain.qcow2" | tr -d ' ')
# The L1 entry's low 32 bits: the L2 table's offset in this small image.
l2=$(od -An -tu4 --endian=big -j $((l1 + 4)) -N 4 "$work/plain.qcow2" | tr -d ' ')
# The L2 table's first entry, copied, now maps guest cluster 0 onto the L1 table.
entry="\\200\\000\\000\\000\\000\\000\\$(printf %o $((l1 >> 8)))\\$(printf %o $((l1 & 255)))"
printf "$entry" | dd of="$work/l2-at-l1.qcow2" bs=1 seek="$l2" conv=notrunc status=none
cp "$work/plain.qcow2" "$work/l1-past-end.qcow2"
printf '\200\000\001\000\000\000\000\000' | dd of="$work/l1-past-end.qcow2" bs=1 seek="$l1" conv=notrunc status=none

# One variant per image, the option byte rotating over the budget, thread,
# container-size and small-chunk bits.
n=0
for f in "$work"/*.qcow2; do
  name=$(basename "$f" .qcow2)
  case $((n % 4)) in 0) flags=00 ;; 1) flags=05 ;; 2) flags=0e ;; 3) flags=0b ;; esac
  n=$((n + 1))
  { printf "\\$(printf %o 0x$flags)\\$(printf %o 0x2a)"; cat "$f"; } > "$out/$name"
done
