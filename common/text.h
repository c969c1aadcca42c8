// Small text helpers of the library's own: case, spaces and hexadecimal. The helpers the
// faces use too (sizes, durations, JSON strings, base64) are public, in
// cdi/text.h; both are implemented in common/text.cc.
#ifndef CDI_COMMON_TEXT_H_
#define CDI_COMMON_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cdi/text.h"

namespace cdi {

// `text` without leading and trailing spaces, tabs, CR and LF (and \v, \f).
std::string_view TrimSpace(std::string_view text);
// "0x1f00": a number in lower-case hexadecimal, for messages about offsets and fields.
std::string Hex(uint64_t value);
// `text` with A-Z lowered (no locale).
std::string AsciiLower(std::string_view text);

}  // namespace cdi

#endif  // CDI_COMMON_TEXT_H_
