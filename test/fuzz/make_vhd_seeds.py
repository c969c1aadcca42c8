#!/usr/bin/env python3
"""Writes a seed corpus for vhd_fuzz into DIR: small dynamic VHD images (with
4 KiB and 512-byte blocks, blocks out of guest order, a partial bitmap, an
empty one) and small fixed ones, each prefixed with the two option bytes
vhd_fuzz.cc reads (options, chunk seed).

Usage: test/fuzz/make_vhd_seeds.py DIR
"""
import os
import struct
import sys


def checksum(data, field):
    total = sum(data[:field]) + sum(data[field + 4:])
    return (~total) & 0xFFFFFFFF


def footer(disk_type, data_offset, size):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI4sIIQQHBBI", f, 8, 2, 0x00010000, data_offset, 0, b"qem2",
                     0x00010000, 0x5769326B, size, size, 100, 4, 17, disk_type)
    struct.pack_into(">I", f, 64, checksum(f, 64))
    return bytes(f)


def dynamic(size, block_size, blocks, bitmap_byte=0xFF):
    """blocks: guest block indexes, in the order they are stored."""
    entries = (size + block_size - 1) // block_size
    bitmap_size = ((block_size // 512 + 7) // 8 + 511) // 512 * 512
    bat_size = (entries * 4 + 511) // 512 * 512
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, 1536, 0x00010000, entries,
                     block_size)
    struct.pack_into(">I", header, 36, checksum(header, 36))
    bat = bytearray(b"\xff" * bat_size)
    body = bytearray()
    offset = 1536 + bat_size
    for n, index in enumerate(blocks):
        struct.pack_into(">I", bat, index * 4, (offset + len(body)) // 512)
        body += bytes([bitmap_byte]) * bitmap_size
        body += bytes([(index * 37 + n) & 0xFF]) * block_size
    f = footer(3, 512, size)
    return f + bytes(header) + bytes(bat) + bytes(body) + f


def fixed(data):
    return data + footer(2, 0xFFFFFFFFFFFFFFFF, len(data))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "dynamic-empty": (b"\x00", dynamic(16384, 4096, [])),
        "dynamic-shuffled": (b"\x04", dynamic(20000, 4096, [3, 0, 4])),
        "dynamic-partial-bitmap": (b"\x08", dynamic(8192, 4096, [1], bitmap_byte=0x5A)),
        "dynamic-sectors": (b"\x0c", dynamic(3000, 512, [5, 2, 0])),
        "fixed": (b"\x10", fixed(bytes(range(256)) * 8)),
        "fixed-known-size": (b"\x14", fixed(b"\x00" * 1024 + b"data" * 128)),
        "fixed-wrong-size": (b"\x18", fixed(b"x" * 1536)[:-1024]),
    }
    for name, (flags, image) in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(flags + b"\x07" + image)


if __name__ == "__main__":
    main()
