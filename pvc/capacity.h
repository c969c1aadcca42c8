// Capacity math: Kubernetes quantities and CDI's filesystem-overhead rules.
#ifndef CDI_PVC_CAPACITY_H_
#define CDI_PVC_CAPACITY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::pvc {

// CDI aligns sizes to 1 MiB (DefaultAlignBlockSize).
inline constexpr uint64_t kAlignBlockSize = 1ull << 20;

// Parses a Kubernetes quantity into bytes: plain integers, decimal and binary
// suffixes (k M G T P E, Ki Mi Gi Ti Pi Ei), decimal exponents (1e9, 1E3),
// fractions (1.5Gi) and milli (500m); a fractional byte count rounds up.
// Negative values and values past 2^63 - 1 are refused.
Result<uint64_t> ParseQuantity(std::string_view text);

// Usable bytes of a filesystem volume holding `available` bytes:
//   RoundDown(ceil(available / (1 + overhead)), 1 MiB)
// e.g. UsableSpace(0.06, 11381663335) == 10 GiB.
uint64_t UsableSpace(double filesystem_overhead, uint64_t available);

// Bytes a PVC must request so that `requested` bytes are usable:
//   ceil(RoundUp(requested, 1 MiB) * (1 + overhead))
// e.g. RequiredSpace(0.06, 10 GiB) == 11381663335.
uint64_t RequiredSpace(double filesystem_overhead, uint64_t requested);

// Free bytes of the filesystem holding `path` for an unprivileged writer (statfs f_bavail).
Result<uint64_t> AvailableSpace(const std::string& path);

// Parses FILESYSTEM_OVERHEAD-style fractions ("0.06", "0", "0.055"): 0 <= x < 1.
Result<double> ParseOverhead(std::string_view text);

}  // namespace cdi::pvc

#endif  // CDI_PVC_CAPACITY_H_
