// CRC-32C (Castagnoli), as VHDX checksums and the snappy framing format use it.
#ifndef CDI_COMMON_CRC32C_H_
#define CDI_COMMON_CRC32C_H_

#include <cstdint>
#include <span>

namespace cdi {

// The CRC-32C of `bytes` continuing from `crc` (start with 0):
// Crc32c(Crc32c(0, a), b) == Crc32c(0, a + b).
uint32_t Crc32c(uint32_t crc, std::span<const uint8_t> bytes);

}  // namespace cdi

#endif  // CDI_COMMON_CRC32C_H_
