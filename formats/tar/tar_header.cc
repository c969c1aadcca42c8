#include "formats/tar/tar_header.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "common/zero.h"

namespace cdi::formats::tar {

std::string_view FieldBytes(const Block& block, Field field) {
  return std::string_view(reinterpret_cast<const char*>(block.data()) + field.offset, field.length);
}

std::string FieldString(const Block& block, Field field) {
  std::string_view bytes = FieldBytes(block, field);
  return std::string(bytes.substr(0, bytes.find('\0')));
}

bool IsZeroBlock(const Block& block) { return IsAllZero(block); }

std::string Quote(std::string_view name) {
  constexpr size_t kShown = 200;
  std::string text = "'";
  for (size_t i = 0; i < name.size() && i < kShown; ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      text += escaped;
    } else {
      text += static_cast<char>(c);
    }
  }
  if (name.size() > kShown) text += "...";
  return text + "'";
}

std::string AtOffset(uint64_t offset) { return " (archive offset " + std::to_string(offset) + ")"; }

std::optional<uint64_t> ParseNumber(std::string_view field) {
  if (field.empty()) return uint64_t{0};
  auto first = static_cast<uint8_t>(field[0]);
  if (first & 0x80) {
    if (first & 0x40) return std::nullopt;  // negative
    uint64_t value = first & 0x3f;
    for (size_t i = 1; i < field.size(); ++i) {
      if (value > (std::numeric_limits<uint64_t>::max() >> 8)) return std::nullopt;
      value = (value << 8) | static_cast<uint8_t>(field[i]);
    }
    return value;
  }
  size_t pos = 0;
  while (pos < field.size() && field[pos] == ' ') ++pos;
  // An all-blank field reads as 0, as tar reads it.
  uint64_t value = 0;
  for (; pos < field.size() && field[pos] >= '0' && field[pos] <= '7'; ++pos) {
    if (value > (std::numeric_limits<uint64_t>::max() >> 3)) return std::nullopt;
    value = (value << 3) | static_cast<uint64_t>(field[pos] - '0');
  }
  for (; pos < field.size(); ++pos) {
    if (field[pos] != ' ' && field[pos] != '\0') return std::nullopt;
  }
  return value;
}

bool ChecksumMatches(const Block& block) {
  std::optional<uint64_t> stored = ParseNumber(FieldBytes(block, kChecksum));
  if (!stored) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlockSize; ++i) {
    bool in_field = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.length;
    uint8_t byte = in_field ? ' ' : block[i];
    unsigned_sum += byte;
    signed_sum += static_cast<int8_t>(byte);
  }
  return *stored == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum;
}

bool IsDecimal(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  if (!IsDecimal(text) || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

std::optional<int64_t> ParsePaxTime(std::string_view text) {
  bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  std::string_view whole = text.substr(0, text.find('.'));
  std::optional<uint64_t> seconds = ParseDecimal(whole);
  if (!seconds || *seconds > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  return negative ? -static_cast<int64_t>(*seconds) : static_cast<int64_t>(*seconds);
}

std::string RefusedTypeName(char typeflag) {
  switch (typeflag) {
    case '1':
      return "a hard link";
    case '2':
      return "a symbolic link";
    case '3':
      return "a character device";
    case '4':
      return "a block device";
    case '6':
      return "a FIFO (named pipe)";
    case 'S':
      return "a GNU sparse file";
    case 'M':
      return "a GNU multi-volume continuation";
    default:
      break;
  }
  auto code = static_cast<unsigned char>(typeflag);
  if (code >= 0x20 && code < 0x7f) return "of unknown type '" + std::string(1, typeflag) + "'";
  return "of unknown type " + std::to_string(code);
}

}  // namespace cdi::formats::tar
