// The tar header: its fields (ustar, GNU), numbers, checksum, pax values,
// and how messages name entries. Internal to the tar reader.
#ifndef CDI_FORMATS_TAR_TAR_HEADER_H_
#define CDI_FORMATS_TAR_TAR_HEADER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "formats/tar/tar_reader.h"

namespace cdi::formats::tar {

// Header layout (POSIX.1-2001 ustar; GNU tar uses the same offsets and
// reuses the prefix area for other fields, so prefix is read only when the
// magic says ustar).
struct Field {
  size_t offset;
  size_t length;
};
inline constexpr Field kName{0, 100};
inline constexpr Field kMode{100, 8};
inline constexpr Field kSize{124, 12};
inline constexpr Field kMtime{136, 12};
inline constexpr Field kChecksum{148, 8};
inline constexpr size_t kTypeflagOffset = 156;
inline constexpr Field kLinkname{157, 100};
inline constexpr Field kMagic{257, 6};
inline constexpr Field kPrefix{345, 155};
// Old GNU sparse headers (type 'S'): four map entries of an offset and a
// length, the flag of an extension block to follow, the file's real size.
// Extension blocks hold 21 entries and the same flag.
inline constexpr size_t kSparseMapOffset = 386;
inline constexpr size_t kSparseHeaderEntries = 4;
inline constexpr size_t kSparseIsExtendedOffset = 482;
inline constexpr Field kSparseRealSize{483, 12};
inline constexpr size_t kSparseExtensionEntries = 21;
inline constexpr size_t kSparseExtensionFlagOffset = 504;
inline constexpr size_t kSparseNumberLength = 12;

using Block = std::array<uint8_t, kBlockSize>;

// A field's bytes, as they are.
std::string_view FieldBytes(const Block& block, Field field);

// A NUL-terminated string field (a full field has no terminator).
std::string FieldString(const Block& block, Field field);

// An end-of-archive block.
bool IsZeroBlock(const Block& block);

// A name as messages show it: quoted, control and non-ASCII bytes escaped,
// long names shortened.
std::string Quote(std::string_view name);

// " (archive offset N)", for messages.
std::string AtOffset(uint64_t offset);

// Numbers: octal digits, optionally surrounded by spaces and ended by NUL or
// space (every tar writes them so); or GNU base-256, flagged by the high bit
// of the first byte, for values octal cannot hold.
std::optional<uint64_t> ParseNumber(std::string_view field);

// The header checksum: the sum of all header bytes with the checksum field
// counted as spaces. Some old writers summed signed chars; tar accepts both.
bool ChecksumMatches(const Block& block);

// pax numbers: decimal digits only.
bool IsDecimal(std::string_view text);
std::optional<uint64_t> ParseDecimal(std::string_view text);

// pax mtime: "[-]seconds[.fraction]"; the fraction is dropped.
std::optional<int64_t> ParsePaxTime(std::string_view text);

// What a refused entry type is, for its message.
std::string RefusedTypeName(char typeflag);

}  // namespace cdi::formats::tar

#endif  // CDI_FORMATS_TAR_TAR_HEADER_H_
