#!/bin/sh
# Runs a fuzz target for a bounded time from freshly generated seeds.
# Usage: test/fuzz/run_fuzzer.sh FUZZER_BINARY WORK_DIR SECONDS
# Exit status is the fuzzer's: non-zero when it found a crash or a contract
# violation (the reproducer is left in WORK_DIR).
set -eu
fuzzer=${1:?usage: $0 FUZZER WORK_DIR SECONDS}
work=${2:?usage: $0 FUZZER WORK_DIR SECONDS}
seconds=${3:-30}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work/seeds" "$work/corpus"
dict="$here/qcow2.dict"
case $(basename "$fuzzer") in
  vhd_fuzz*)
    "$here/make_vhd_seeds.py" "$work/seeds"
    dict="$here/vhd.dict"
    ;;
  *) "$here/make_qcow2_seeds.sh" "$work/seeds" ;;
esac

case $(basename "$fuzzer") in
  pipeline_fuzz*)
    # Wrapped streams and archives too: the first byte selects disk (even) or
    # archive (odd) content, the second seeds the chunk sizes.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    seq 1 3000 > "$tmp/disk.raw"
    mkdir -p "$tmp/tree/dir"
    seq 1 100 > "$tmp/tree/dir/file.txt"
    : > "$tmp/tree/empty"
    tar -C "$tmp/tree" -cf "$tmp/archive.tar" .
    qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512 "$tmp/disk.raw" "$tmp/disk.qcow2"
    # Small VHDs (dynamic with 4 KiB blocks, fixed), without vhd_fuzz's option bytes.
    "$here/make_vhd_seeds.py" "$tmp/vhd"
    tail -c +3 "$tmp/vhd/dynamic-shuffled" > "$tmp/disk.vhd"
    tail -c +3 "$tmp/vhd/fixed" > "$tmp/disk.fixed-vhd"
    for sub in streamOptimized monolithicSparse; do
      qemu-img convert -q -f raw -O vmdk -o subformat=$sub "$tmp/disk.raw" "$tmp/disk.$sub.vmdk"
    done
    for f in disk.raw disk.qcow2 disk.vhd disk.fixed-vhd archive.tar; do
      gzip -c "$tmp/$f" > "$tmp/$f.gz"
      xz -c "$tmp/$f" > "$tmp/$f.xz"
      zstd -q -c "$tmp/$f" > "$tmp/$f.zst"
    done
    for f in "$tmp"/disk.* "$tmp"/archive.*; do
      case $f in *archive*) first='\001' ;; *) first='\000' ;; esac
      { printf "$first\007"; cat "$f"; } > "$work/seeds/$(basename "$f")"
    done
    ;;
  vdi_fuzz*)
    # Dynamic and static VDI images: one with no data blocks, one with two.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    qemu-img create -q -f vdi "$tmp/empty.vdi" 3M
    { seq 1 200000; head -c 1048576 /dev/zero; seq 1 1000; } > "$tmp/disk.raw"
    qemu-img convert -q -f raw -O vdi "$tmp/disk.raw" "$tmp/dynamic.vdi"
    qemu-img convert -q -f raw -O vdi -o static=on "$tmp/disk.raw" "$tmp/static.vdi"
    for f in "$tmp"/*.vdi; do
      { printf '\004\007'; cat "$f"; } > "$work/seeds/$(basename "$f")"
      { printf '\000\003'; cat "$f"; } > "$work/seeds/unknown-size-$(basename "$f")"
    done
    ;;
esac

"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
  -dict="$dict" -artifact_prefix="$work/" "$work/corpus" "$work/seeds"
