# The benchmark images, made once and kept in $images (bench/run.sh,
# bench/compare.sh, bench/formats.sh and bench/decoders.sh source this after
# setting images=DIR, and size=SIZE for make_source).

make_raw() {  # 2 GiB: 56 MiB random then 8 MiB of zeros, 32 times
  [ -f "$images/disk.raw" ] && return
  echo "making $images/disk.raw (2 GiB) and its .gz and .zst ..."
  for _ in $(seq 1 32); do
    head -c 56M /dev/urandom
    head -c 8M /dev/zero
  done > "$images/disk.raw.tmp"
  mv "$images/disk.raw.tmp" "$images/disk.raw"
  gzip -1 -k -c "$images/disk.raw" > "$images/disk.raw.gz"
  zstd -q -T0 -3 -f "$images/disk.raw" -o "$images/disk.raw.zst"
}

make_qcow2() {  # 4 GiB virtual, 1.5 GiB of compressible data in 24 scattered 64 MiB runs
  [ -f "$images/disk.qcow2" ] && return
  echo "making $images/disk.qcow2 (4 GiB virtual, 1.5 GiB data) and a compressed copy ..."
  python3 - "$images/qsrc.raw" <<'PY'
import os, random, sys
random.seed(7)
size = 4 << 30
run = 64 << 20
with open(sys.argv[1], "wb") as f:
    f.truncate(size)
    slots = random.sample(range(size // run), 24)
    for slot in slots:
        f.seek(slot * run)
        for _ in range(run // (1 << 20)):
            # half random, half zero within each 4 KiB: compresses about 2:1
            block = b"".join(os.urandom(2048) + bytes(2048) for _ in range(256))
            f.write(block)
PY
  qemu-img convert -f raw -O qcow2 "$images/qsrc.raw" "$images/disk.qcow2"
  qemu-img convert -c -f raw -O qcow2 "$images/qsrc.raw" "$images/disk-c.qcow2"
  rm -f "$images/qsrc.raw"
}

# make_source: $images/source.raw, $size virtual (a quantity: 2G): 64 slots,
# half of them data (4 KiB blocks, half random and half zero: about 2:1).
make_source() {
  [ -f "$images/source.raw" ] && return
  echo "making $images/source.raw ($size virtual, half data) ..."
  python3 - "$images/source.raw.tmp" "$(numfmt --from=iec "$size")" <<'PY'
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
  mv "$images/source.raw.tmp" "$images/source.raw"
}

