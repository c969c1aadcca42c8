// Format detection by magic bytes, the way CDI does it: the leading bytes of a
// stream decide what it is; a file name never does.
//
// Thread-safety: every function here is pure and may be called from any thread.
#ifndef CDI_FORMATS_DETECT_H_
#define CDI_FORMATS_DETECT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cdi::formats {

enum class Format {
  kRaw,    // anything without a known magic, ISO 9660 images included
  kGzip,   // 1F 8B at 0
  kXz,     // FD 37 7A 58 5A 00 at 0
  kZstd,   // 28 B5 2F FD at 0, or a skippable frame 5? 2A 4D 18 at 0 (as pzstd writes first)
  kQcow2,  // "QFI\xFB" at 0
  kVmdk,   // "KDMV" at 0 (hosted sparse extent)
  kVdi,    // 7F 10 DA BE at 0x40 (the signature 0xBEDA107F, little-endian)
  kVhd,    // "conectix" at 0 (the footer copy that dynamic and differencing VHDs start with)
  kVhdx,   // "vhdxfile" at 0
};

// How many leading bytes Detect() looks at: enough for the ISO 9660 volume
// descriptor signature "CD001" at 0x8001, the farthest magic it checks.
inline constexpr size_t kDetectBytes = 0x8001 + 5;

// Decides the format of a stream from its first bytes. `head` should hold
// min(kDetectBytes, stream length) bytes; with fewer, magics that do not fit in
// `head` are simply not matched (a 3-byte stream is raw). Bytes past
// kDetectBytes are ignored.
Format Detect(std::span<const uint8_t> head);

// True for gzip, xz and zstd: layers that are unwrapped and detected again.
bool IsWrapper(Format format);

// True when `head` carries the ISO 9660 signature "CD001" at 0x8001. Such an
// image is still Format::kRaw; this only adds a detail for the user.
bool HasIso9660Signature(std::span<const uint8_t> head);

// Lower-case name, as shown in format chains and messages: "raw", "gzip", "xz",
// "zstd", "qcow2", "vmdk", "vdi", "vhd", "vhdx".
std::string_view FormatName(Format format);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_DETECT_H_
