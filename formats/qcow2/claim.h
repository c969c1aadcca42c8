// Claims: the host ranges the header and the tables point to, and the errors
// that name them.
//
// The decoder reads the image once, in host order. Every structure the header
// and the tables point to is a claim on a host range: the L1 table, the
// refcount table and its blocks, the snapshot table and the snapshots' L1
// tables, each L2 table the L1 table names, and each data or compressed
// cluster an L2 table maps. Two claims on one byte make the image corrupt;
// a claim past the end of the input makes it truncated. Messages name a claim
// by what it is and where it lies ("the L2 table for guest offset 0x0 at host
// offset 0x50000"), and say what to do.
#ifndef CDI_FORMATS_QCOW2_CLAIM_H_
#define CDI_FORMATS_QCOW2_CLAIM_H_

#include <cstdint>
#include <string>

#include "cdi/status.h"

namespace cdi::formats::qcow2 {

// What to do about a corrupt image, and about one that is truncated or corrupt.
inline constexpr char kCheckAdvice[] = "; the image is corrupt: check it with 'qemu-img check'";
inline constexpr char kPastEndAdvice[] =
    "; the image is truncated or corrupt: fetch it again, or check it with 'qemu-img check'";

// The kinds of host ranges the tables claim.
enum class ClaimKind : uint8_t {
  kNone,
  kL1,
  kRefcountTable,
  kRefcountBlock,
  kSnapshotTable,
  kSnapshotL1,
  kL2,
  kData,
  kCompressed,
};

// A host range some table claims, for ordering and for messages.
struct Claim {
  ClaimKind kind = ClaimKind::kNone;
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t guest_offset = 0;  // kL2, kData, kCompressed
};

// "the L2 table for guest offset 0x0 at host offset 0x50000".
std::string ClaimText(const Claim& claim);

// Data whose mapping is known: `length` host bytes at host_offset hold guest
// bytes from guest_offset on (standard), or inflate to a cluster of which the
// first guest_length bytes are guest data (compressed).
struct Run {
  uint64_t host_offset = 0;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint32_t guest_length = 0;  // compressed only
  bool compressed = false;

  uint64_t host_end() const { return host_offset + length; }
  Claim claim() const {
    return {compressed ? ClaimKind::kCompressed : ClaimKind::kData, host_offset, host_end(),
            guest_offset};
  }
};

// A table that is one cluster (L2 table, refcount block), known but not yet seen.
struct TableRef {
  uint64_t host_offset = 0;
  uint64_t index = 0;  // L1 index (L2 tables) or refcount table index (blocks)
};

// A host range known to hold metadata the decoder only skips.
struct Extent {
  uint64_t start = 0;
  uint64_t end = 0;
};

// `later` starts inside `earlier`: "referenced twice" when both are data
// starting at one host offset, an overlap otherwise (kCorruptImage).
Status OverlapError(const Claim& later, const Claim& earlier);

// The input ended after `position` bytes, before the end of `claim`.
Status TruncatedError(uint64_t position, const Claim& claim);

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_CLAIM_H_
