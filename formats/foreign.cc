#include "formats/foreign.h"

#include <algorithm>
#include <array>

namespace cdi::formats {
namespace {

using namespace std::string_view_literals;

struct ForeignMagic {
  std::string_view magic;  // at offset 0
  ForeignFormat format;
};

// Each magic is where the format's own header starts; none of them can be the
// first bytes of a format Detect() knows.
constexpr std::array kForeignMagics = {
    ForeignMagic{"QED\0"sv, {"QED image", "qed", ""}},
    ForeignMagic{"WithoutFreeSpace"sv, {"Parallels disk image", "parallels", ""}},
    ForeignMagic{"WithouFreSpacExt"sv, {"Parallels disk image", "parallels", ""}},
    ForeignMagic{"Bochs Virtual HD Image"sv, {"Bochs disk image", "bochs", ""}},
    ForeignMagic{"#!/bin/sh\n#V2.0 Format\nmodprobe cloop"sv,
                 {"cloop compressed image", "cloop", ""}},
    ForeignMagic{"LUKS\xBA\xBE"sv,
                 {"LUKS-encrypted volume", "luks",
                  "; decrypting needs its passphrase: add --object secret,id=sec0,file=PASSFILE "
                  "and use --image-opts driver=luks,key-secret=sec0,file.filename=IMAGE in "
                  "place of -f luks IMAGE"}},
    ForeignMagic{"COWD"sv, {"VMDK vmfsSparse (COWD) disk", "vmdk", ""}},
    ForeignMagic{"\xBE\xBA\xFE\xCA\0\0\0\0"sv,
                 {"VMDK seSparse extent", "vmdk",
                  "; an extent is one part of a disk: convert the descriptor .vmdk that names "
                  "it, with the extent beside it"}},
    ForeignMagic{"# Disk DescriptorFile"sv,
                 {"VMDK descriptor, text that names the files holding the disk's data", "vmdk",
                  "; an extent path can name any file on the host, so descriptors are never "
                  "followed here: convert it where its extents lie"}},
};

bool StartsWith(std::span<const uint8_t> head, std::string_view magic) {
  return head.size() >= magic.size() &&
         std::equal(magic.begin(), magic.end(), head.begin(), [](char expected, uint8_t actual) {
           return static_cast<uint8_t>(expected) == actual;
         });
}

uint32_t BigEndian32(std::span<const uint8_t> bytes, size_t offset) {
  return static_cast<uint32_t>(bytes[offset]) << 24 | static_cast<uint32_t>(bytes[offset + 1]) << 16 |
         static_cast<uint32_t>(bytes[offset + 2]) << 8 | static_cast<uint32_t>(bytes[offset + 3]);
}

constexpr size_t kKolySize = 512;

}  // namespace

std::optional<ForeignFormat> DetectForeignTrailer(std::span<const uint8_t> tail) {
  // UDIF's trailer: "koly", version 4, header size 512 (big-endian), as
  // qemu's dmg driver and Apple's hdiutil read it.
  if (tail.size() != kKolySize || !StartsWith(tail, "koly") || BigEndian32(tail, 4) != 4 ||
      BigEndian32(tail, 8) != kKolySize) {
    return std::nullopt;
  }
  return ForeignFormat{"DMG disk image (Apple's UDIF)", "dmg", ""};
}

std::optional<ForeignFormat> DetectForeign(std::span<const uint8_t> head) {
  for (const ForeignMagic& entry : kForeignMagics) {
    if (StartsWith(head, entry.magic)) return entry.format;
  }
  return std::nullopt;
}

std::string ForeignFormatMessage(const ForeignFormat& format) {
  return "the image is a " + std::string(format.name) +
         ", which is not imported directly; convert it with 'qemu-img convert -f " +
         std::string(format.qemu_driver) + " -O qcow2 IMAGE disk.qcow2' and import disk.qcow2" +
         std::string(format.note);
}

}  // namespace cdi::formats
