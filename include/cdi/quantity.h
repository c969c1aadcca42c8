// Quantities and CDI's filesystem-overhead rules: how a face reads a size or
// an overhead it was given, and how the usable size of a volume follows.
#ifndef CDI_QUANTITY_H_
#define CDI_QUANTITY_H_

#include <cstdint>
#include <string_view>

#include "cdi/status.h"

namespace cdi {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// CDI aligns sizes to 1 MiB (DefaultAlignBlockSize).
inline constexpr uint64_t kAlignBlockSize = 1ull << 20;

// The largest quantity accepted: Kubernetes keeps quantities in an int64.
inline constexpr uint64_t kMaxQuantity = (1ull << 63) - 1;

// Parses a Kubernetes quantity into bytes, as resource.ParseQuantity reads it
// and Quantity.Value() rounds it: plain integers ("11381663335"), decimal
// suffixes (k M G T P E, and m u n for thousandths, millionths, billionths),
// binary suffixes (Ki Mi Gi Ti Pi Ei), decimal exponents (1e9, 1E3, 5e-1),
// fractions (1.5Gi, .5Mi, 1.G) and a leading '+'. A fractional byte count
// rounds up ("500m" is 1 byte). Refused with kInvalidArgument and a message
// listing the accepted forms: an empty string, other characters or spaces, an
// unknown suffix ("1K", "1gi"), a negative value, and values above
// kMaxQuantity (where Kubernetes would silently cap them).
Result<uint64_t> ParseQuantity(std::string_view text);

// The fraction math below is exact: `filesystem_overhead` is taken as the
// shortest decimal that reads back as the same double ("0.06" is 6/100, not
// the nearest binary fraction), and products are computed in 128-bit
// integers. Overheads below 0 (or NaN) count as 0 and above 1 as 1; decimals
// finer than 10^-18 are rounded to 18 places.

// Usable bytes of a filesystem volume holding `available` bytes:
//   RoundDown(ceil(available / (1 + overhead)), 1 MiB)
// e.g. UsableSpace(0.06, 11381663335) == 10 GiB.
uint64_t UsableSpace(double filesystem_overhead, uint64_t available);

// Bytes a PVC must request so that `requested` bytes are usable:
//   ceil(RoundUp(requested, 1 MiB) * (1 + overhead))
// e.g. RequiredSpace(0.06, 10 GiB) == 11381663335. Saturates at UINT64_MAX.
uint64_t RequiredSpace(double filesystem_overhead, uint64_t requested);

// Parses FILESYSTEM_OVERHEAD-style fractions: a plain decimal ("0.06", "0",
// "0.055", ".1") with 0 <= x < 1. Signs, exponents, spaces and other
// characters are refused with kInvalidArgument.
Result<double> ParseOverhead(std::string_view text);

// The one range rule for a filesystem overhead, whichever face it comes from
// (a flag, FILESYSTEM_OVERHEAD, a manifest, a TargetSpec): 0 <= x < 1.
// Refused with kInvalidArgument, saying what was given and what is expected.
Status CheckOverhead(double filesystem_overhead);

}  // namespace cdi

#endif  // CDI_QUANTITY_H_
