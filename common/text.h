// Small text helpers of the library's own: case and spaces. The helpers the
// faces use too (sizes, durations, JSON strings, base64) are public, in
// cdi/text.h; both are implemented in common/text.cc.
#ifndef CDI_COMMON_TEXT_H_
#define CDI_COMMON_TEXT_H_

#include <string>
#include <string_view>

#include "cdi/text.h"

namespace cdi {

// `text` without leading and trailing spaces, tabs, CR and LF (and \v, \f).
std::string_view TrimSpace(std::string_view text);
// `text` with A-Z lowered (no locale).
std::string AsciiLower(std::string_view text);

}  // namespace cdi

#endif  // CDI_COMMON_TEXT_H_
