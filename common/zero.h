// The one all-zero scan: targets skip zero blocks, the qcow2 spool keeps no
// zero runs, tar finds its end. It runs at memory speed.
#ifndef CDI_COMMON_ZERO_H_
#define CDI_COMMON_ZERO_H_

#include <cstdint>
#include <span>

namespace cdi {

// True when every byte of `bytes` is zero (an empty span is).
bool IsAllZero(std::span<const uint8_t> bytes);

}  // namespace cdi

#endif  // CDI_COMMON_ZERO_H_
