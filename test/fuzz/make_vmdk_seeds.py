#!/usr/bin/env python3
"""Writes a seed corpus for vmdk_fuzz into DIR: small VMDK images with
512-byte and 4 KiB grains (qemu-img only writes 64 KiB grains, which makes
every image at least 64 KiB): monolithicSparse with grains out of guest order,
a zeroed grain and a hole; streamOptimized with its grain table, directory,
footer and end-of-stream markers, and one that ends without them; and hostile
ones (a differencing disk, a FLAT extent that names another file, a grain
directory before the descriptor's end, a grain table entry past the image).
Each is prefixed with the two option bytes vmdk_fuzz.cc reads (options, chunk
seed). `qemu-img convert -f vmdk` reads the well-formed ones.

Usage: test/fuzz/make_vmdk_seeds.py DIR
"""
import os
import struct
import sys
import zlib

SECTOR = 512
GTES_PER_GT = 512
FLAG_NEWLINE = 1
FLAG_ZEROED_GTE = 4
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17


def descriptor(create_type, capacity, extent_type="SPARSE", extra=""):
    text = (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="{create_type}"\n{extra}\n# Extent description\n'
        f'RW {capacity} {extent_type} "disk.vmdk"\n\n'
        '# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n'
        'ddb.adapterType = "ide"\n'
    ).encode()
    assert len(text) <= SECTOR
    return text + bytes(SECTOR - len(text))


def header(version, flags, capacity, grain, gd_offset, overhead, compress=0):
    h = bytearray(SECTOR)
    struct.pack_into("<4sIIQQQQIQQQB4sH", h, 0, b"KDMV", version, flags, capacity, grain, 1, 1,
                     GTES_PER_GT, 0, gd_offset, overhead, 0, b"\n \r\n", compress)
    return bytes(h)


def pad(data):
    return data + bytes(-len(data) % SECTOR)


def grain_data(index, grain):
    return bytes([(index * 29 + 7) & 0xFF]) * (grain * SECTOR)


def sparse(capacity, grain, stored, zeroed=(), gte_override=None, create_type="monolithicSparse",
           extent_type="SPARSE", extra="", gd_offset=2):
    """stored: guest grain indexes in the order their data is stored."""
    grains = (capacity + grain - 1) // grain
    tables = (grains + GTES_PER_GT - 1) // GTES_PER_GT
    gd_sectors = (tables * 4 + SECTOR - 1) // SECTOR
    gt_start = 2 + gd_sectors
    overhead = gt_start + tables * 4
    gd = bytearray(gd_sectors * SECTOR)
    for t in range(tables):
        struct.pack_into("<I", gd, t * 4, gt_start + t * 4)
    gt = bytearray(tables * 4 * SECTOR)
    body = bytearray()
    for index in zeroed:
        struct.pack_into("<I", gt, index * 4, 1)
    for index in stored:
        struct.pack_into("<I", gt, index * 4, overhead + len(body) // SECTOR)
        body += grain_data(index, grain)
    if gte_override:
        struct.pack_into("<I", gt, gte_override[0] * 4, gte_override[1])
    flags = FLAG_NEWLINE | (FLAG_ZEROED_GTE if zeroed else 0)
    return (header(1, flags, capacity, grain, gd_offset, overhead) +
            descriptor(create_type, capacity, extent_type, extra) + bytes(gd) + bytes(gt) +
            bytes(body))


def marker(value, size_or_type, metadata=False):
    if metadata:
        return pad(struct.pack("<QII", value, 0, size_or_type))
    return struct.pack("<QI", value, size_or_type)


def stream(capacity, grain, stored, tables=True):
    grains = (capacity + grain - 1) // grain
    out = bytearray(header(3, FLAG_NEWLINE | FLAG_COMPRESSED | FLAG_MARKERS, capacity, grain,
                           0xFFFFFFFFFFFFFFFF, 2, compress=1))
    out += descriptor("streamOptimized", capacity)
    gt = bytearray(GTES_PER_GT * 4)
    for index in stored:
        struct.pack_into("<I", gt, index * 4, len(out) // SECTOR)
        packed = zlib.compress(grain_data(index, grain))
        out += pad(marker(index * grain, len(packed)) + packed)
    if tables:
        assert grains <= GTES_PER_GT
        out += marker(4, 1, metadata=True)  # grain table, 4 sectors
        gt_sector = len(out) // SECTOR
        out += gt
        out += marker(1, 2, metadata=True)  # grain directory, 1 sector
        gd_sector = len(out) // SECTOR
        out += pad(struct.pack("<I", gt_sector))
        out += marker(1, 3, metadata=True)  # footer, 1 sector
        out += header(3, FLAG_NEWLINE | FLAG_COMPRESSED | FLAG_MARKERS, capacity, grain,
                      gd_sector, 2, compress=1)
        out += bytes(SECTOR)  # end of stream
    return bytes(out)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        # Well-formed.
        "sparse-sectors": (b"\x00", sparse(16, 1, [5, 0, 9, 2])),
        "sparse-4k-zeroed": (b"\x04", sparse(40, 8, [3, 1], zeroed=[0])),
        "sparse-empty": (b"\x08", sparse(24, 8, [])),
        "stream-sectors": (b"\x00", stream(16, 1, [3, 0, 7])),
        "stream-4k": (b"\x04", stream(48, 8, [1, 4])),
        "stream-no-tables": (b"\x0c", stream(16, 1, [2, 1], tables=False)),
        # Hostile: each is refused by name.
        "hostile-differencing": (b"\x00", sparse(16, 1, [0], extra="parentFileNameHint=\"base.vmdk\"")),
        "hostile-flat-extent": (b"\x04", sparse(16, 1, [0], extent_type="FLAT")),
        "hostile-gd-in-descriptor": (b"\x00", sparse(16, 1, [1], gd_offset=1)),
        "hostile-gte-past-end": (b"\x04", sparse(16, 1, [1], gte_override=(3, 0x7FFFFFFF))),
        "hostile-gte-in-descriptor": (b"\x00", sparse(16, 1, [1], gte_override=(2, 1))),
        "hostile-stream-type-mismatch": (b"\x00", sparse(16, 1, [1], create_type="streamOptimized")),
    }
    for name, (flags, image) in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(flags + b"\x07" + image)


if __name__ == "__main__":
    main()
