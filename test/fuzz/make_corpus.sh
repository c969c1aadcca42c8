#!/bin/sh
# Writes the seeds of the committed fuzz corpus, test/fuzz/corpus/<target>/,
# from qemu-img, qemu-io and the seed scripts beside this one: the smallest
# interesting inputs of each format and wrapper, hostile ones included. Files
# of the same names are replaced; inputs merged from fuzzing runs (named by
# their SHA-1) and regression inputs (regress-*) are left as they are.
# Usage: test/fuzz/make_corpus.sh [CORPUS_DIR]   (default test/fuzz/corpus)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
corpus=${1:-$here/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$corpus/qcow2" "$corpus/vhd" "$corpus/vhdx" "$corpus/vmdk" "$corpus/vdi" "$corpus/pipeline"

# Writes the option byte $1 (octal escape), the chunk seed 7 and file $2 to $3.
seed() { { printf "$1\\007"; cat "$2"; } > "$3"; }
# Writes the bytes of printf escapes $2 into file $1 at offset $3.
patch_at() { printf "$2" | dd of="$1" bs=1 seek="$3" conv=notrunc status=none; }

"$here/make_qcow2_seeds.sh" "$corpus/qcow2" >/dev/null
"$here/make_vhd_seeds.py" "$corpus/vhd"
"$here/make_vmdk_seeds.py" "$corpus/vmdk"

# VDI (qemu-img writes 1 MiB blocks only, so images with data are cut short
# after their first KiB of data): an empty disk, every block a zero block, a
# dynamic and a static disk cut short, and hostile block maps (a block
# placed twice, a block past those allocated).
{ seq 1 200000; head -c 1048576 /dev/zero; seq 1 1000; } > "$tmp/disk.raw"
qemu-img create -q -f vdi "$tmp/empty.vdi" 3M
cp "$tmp/empty.vdi" "$tmp/zero-blocks.vdi"
patch_at "$tmp/zero-blocks.vdi" '\376\377\377\377\376\377\377\377\376\377\377\377' 512
qemu-img convert -q -f raw -O vdi "$tmp/disk.raw" "$tmp/dynamic-full.vdi"
qemu-img convert -q -f raw -O vdi -o static=on "$tmp/disk.raw" "$tmp/static-full.vdi"
head -c 2048 "$tmp/dynamic-full.vdi" > "$tmp/dynamic-cut.vdi"
head -c 2048 "$tmp/static-full.vdi" > "$tmp/static-cut.vdi"
cp "$tmp/dynamic-cut.vdi" "$tmp/block-twice.vdi"
patch_at "$tmp/block-twice.vdi" '\000\000\000\000' 516
cp "$tmp/dynamic-cut.vdi" "$tmp/block-past-allocated.vdi"
patch_at "$tmp/block-past-allocated.vdi" '\007\000\000\000' 520
seed '\000' "$tmp/empty.vdi" "$corpus/vdi/empty"
seed '\004' "$tmp/zero-blocks.vdi" "$corpus/vdi/zero-blocks"
seed '\000' "$tmp/dynamic-cut.vdi" "$corpus/vdi/dynamic-cut"
seed '\014' "$tmp/static-cut.vdi" "$corpus/vdi/static-cut"
seed '\000' "$tmp/block-twice.vdi" "$corpus/vdi/hostile-block-twice"
seed '\000' "$tmp/block-past-allocated.vdi" "$corpus/vdi/hostile-block-past-allocated"

# VHDX: qemu-img places the BAT at 2 MiB and the metadata at 3 MiB, so the
# smallest real images are megabytes of mostly zeros; they are kept
# xz-compressed (NAME.xz) and run_fuzzer.sh expands them before fuzzing.
# A dynamic disk with data in two blocks, a fixed disk, and hostile ones:
# a header whose checksum fails, and a BAT entry that points into the headers.
qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M "$tmp/dynamic.vhdx" 4M
qemu-io -f vhdx -c 'write -P 0x5a 0 4k' -c 'write -P 0xa5 3M 64k' "$tmp/dynamic.vhdx" >/dev/null
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$tmp/fixed.vhdx" 2M
qemu-io -f vhdx -c 'write -P 0x11 1M 4k' "$tmp/fixed.vhdx" >/dev/null
cp "$tmp/dynamic.vhdx" "$tmp/bad-header-crc.vhdx"
patch_at "$tmp/bad-header-crc.vhdx" '\377' 65600
patch_at "$tmp/bad-header-crc.vhdx" '\377' 131136
cp "$tmp/dynamic.vhdx" "$tmp/bat-into-headers.vhdx"
patch_at "$tmp/bat-into-headers.vhdx" '\006\000\020\000\000\000\000\000' 2097152
for f in dynamic fixed bad-header-crc bat-into-headers; do
  case $f in dynamic|fixed) name=$f ;; *) name=hostile-$f ;; esac
  seed '\000' "$tmp/$f.vhdx" "$tmp/$name.seed"
  xz -9 -c "$tmp/$name.seed" > "$corpus/vhdx/$name.xz"
done

# The pipeline: one small image of each format, raw and inside each wrapper;
# archives; and hostile streams (a wrapper inside a wrapper, a gzip bomb
# past the unwrapped-size limit, archive entries that climb out of the root
# or link out of it). The first byte selects disk (even) or archive (odd)
# content and the limits (pipeline_fuzz.cc).
seq 1 3000 > "$tmp/disk.raw"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512 "$tmp/disk.raw" "$tmp/disk.qcow2"
tail -c +3 "$corpus/vhd/dynamic-shuffled" > "$tmp/disk.vhd"
tail -c +3 "$corpus/vhd/fixed" > "$tmp/disk.fixed-vhd"
tail -c +3 "$corpus/vmdk/stream-sectors" > "$tmp/disk.stream-vmdk"
tail -c +3 "$corpus/vmdk/sparse-sectors" > "$tmp/disk.sparse-vmdk"
tail -c +3 "$corpus/vdi/zero-blocks" > "$tmp/disk.vdi"
mkdir -p "$tmp/tree/dir"
seq 1 100 > "$tmp/tree/dir/file.txt"
: > "$tmp/tree/empty"
ln -s dir/file.txt "$tmp/tree/link"
tar -b 1 -C "$tmp/tree" -cf "$tmp/archive.tar" .
# GNU tar writes a long name as a ././@LongLink entry; pax writes a path record.
long=$(printf 'd%.0s' $(seq 1 120))
mkdir -p "$tmp/long/$long"
: > "$tmp/long/$long/f"
tar -b 1 -C "$tmp/long" --format=gnu -cf "$tmp/archive-gnu-long.tar" .
tar -b 1 -C "$tmp/long" --format=pax -cf "$tmp/archive-pax-long.tar" .
mkdir -p "$tmp/escape"
: > "$tmp/escape/f"
tar -b 1 -C "$tmp/escape" --transform='s,^\./f,../../f,' -P -cf "$tmp/hostile-dotdot.tar" ./f
ln -s /etc "$tmp/escape/out"
tar -b 1 -C "$tmp/escape" -cf "$tmp/hostile-link-out.tar" ./out
for f in disk.raw disk.qcow2 disk.vhd disk.fixed-vhd disk.stream-vmdk archive.tar; do
  gzip -n -c "$tmp/$f" > "$tmp/$f.gz"
  # .xzs, not .xz: a corpus's NAME.xz is an input packed for storage
  # (run_fuzzer.sh expands it); these are xz streams fed as they are.
  xz -c "$tmp/$f" > "$tmp/$f.xzs"
  zstd -q -c "$tmp/$f" > "$tmp/$f.zst"
done
gzip -n -c "$tmp/disk.qcow2.gz" > "$tmp/hostile-gz-in-gz"
head -c 2000000 /dev/zero | gzip -n -9 > "$tmp/hostile-gzip-bomb"
zstd -q -c "$tmp/disk.raw" | head -c 300 > "$tmp/hostile-zstd-cut"
for f in "$tmp"/disk.* "$tmp"/archive* "$tmp"/hostile-*; do
  name=$(basename "$f")
  case $name in
    *tar*) first='\001' ;;
    hostile-gzip-bomb) first='\002' ;;
    *.xzs) first='\004' ;;
    *.zst) first='\010' ;;
    *) first='\000' ;;
  esac
  seed "$first" "$f" "$corpus/pipeline/$name"
done
for target in qcow2 vhd vhdx vmdk vdi pipeline; do
  echo "$target: $(ls "$corpus/$target" | wc -l) inputs, $(du -sk "$corpus/$target" | cut -f1) KiB"
done
