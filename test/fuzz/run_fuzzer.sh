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
"$here/make_qcow2_seeds.sh" "$work/seeds"

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
    for sub in streamOptimized monolithicSparse; do
      qemu-img convert -q -f raw -O vmdk -o subformat=$sub "$tmp/disk.raw" "$tmp/disk.$sub.vmdk"
    done
    for f in disk.raw disk.qcow2 archive.tar; do
      gzip -c "$tmp/$f" > "$tmp/$f.gz"
      xz -c "$tmp/$f" > "$tmp/$f.xz"
      zstd -q -c "$tmp/$f" > "$tmp/$f.zst"
    done
    for f in "$tmp"/disk.* "$tmp"/archive.*; do
      case $f in *archive*) first='\001' ;; *) first='\000' ;; esac
      { printf "$first\007"; cat "$f"; } > "$work/seeds/$(basename "$f")"
    done
    ;;
esac

"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
  -dict="$here/qcow2.dict" -artifact_prefix="$work/" "$work/corpus" "$work/seeds"
