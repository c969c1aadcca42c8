#include "common/zero.h"

#include <cstring>

namespace cdi {

bool IsAllZero(std::span<const uint8_t> bytes) {
  // Check a short prefix, then compare the buffer with itself shifted by that
  // prefix: memcmp is vectorised, so this runs at memory speed.
  constexpr size_t kPrefix = 16;
  const uint8_t* data = bytes.data();
  const size_t length = bytes.size();
  const size_t prefix = length < kPrefix ? length : kPrefix;
  for (size_t i = 0; i < prefix; ++i) {
    if (data[i] != 0) return false;
  }
  return length <= kPrefix || std::memcmp(data, data + kPrefix, length - kPrefix) == 0;
}

}  // namespace cdi
