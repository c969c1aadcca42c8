// Disk formats this importer does not decode, recognised by their magic so
// that they are refused by name: without this, their container bytes (a
// Parallels image's metadata, a LUKS header) would be imported as a raw disk,
// exit 0, and the VM would not boot.
//
// Detect() (formats/detect.h) sees these streams as raw; the pipeline asks
// DetectForeign() before it builds the raw decoder, and the raw decoder asks
// DetectForeignTrailer() of the stream's last bytes at its end.
//
// Thread-safety: pure functions.
#ifndef CDI_FORMATS_FOREIGN_H_
#define CDI_FORMATS_FOREIGN_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cdi::formats {

struct ForeignFormat {
  std::string_view name;         // "Parallels disk image", "QED image", ...
  std::string_view qemu_driver;  // qemu-img's -f name: "parallels", "qed", ...
  std::string_view note;         // what else the user must know, or ""
};

// The foreign format whose magic `head` (the stream's first bytes) starts
// with, or nullopt.
std::optional<ForeignFormat> DetectForeign(std::span<const uint8_t> head);

// The foreign format whose trailer `tail` (the stream's last 512 bytes) is,
// or nullopt: Apple's disk images (DMG, UDIF) end in a 512-byte "koly" block
// (version 4, header size 512) and hold nothing at their start to tell them
// from a raw disk, so they are seen only at the end of the stream.
std::optional<ForeignFormat> DetectForeignTrailer(std::span<const uint8_t> tail);

// "the image is a Parallels disk image, which is not imported directly;
// convert it with 'qemu-img convert -f parallels -O qcow2 IMAGE disk.qcow2'
// and import disk.qcow2" (with the format's note, if any).
std::string ForeignFormatMessage(const ForeignFormat& format);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_FOREIGN_H_
