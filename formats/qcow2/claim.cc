#include "formats/qcow2/claim.h"

#include "formats/qcow2/qcow2_format.h"

namespace cdi::formats::qcow2 {

std::string ClaimText(const Claim& claim) {
  std::string range = " at host offset " + Hex(claim.start);
  switch (claim.kind) {
    case ClaimKind::kNone:
      return "nothing";
    case ClaimKind::kL1:
      return "the L1 table" + range;
    case ClaimKind::kRefcountTable:
      return "the refcount table" + range;
    case ClaimKind::kRefcountBlock:
      return "a refcount block" + range;
    case ClaimKind::kSnapshotTable:
      return "the snapshot table" + range;
    case ClaimKind::kSnapshotL1:
      return "the L1 table of an internal snapshot" + range;
    case ClaimKind::kL2:
      return "the L2 table for guest offset " + Hex(claim.guest_offset) + range;
    case ClaimKind::kData:
      return "the data for guest offset " + Hex(claim.guest_offset) + range;
    case ClaimKind::kCompressed:
      return "the compressed cluster for guest offset " + Hex(claim.guest_offset) + range;
  }
  return "?";
}

Status OverlapError(const Claim& later, const Claim& earlier) {
  bool both_data = (later.kind == ClaimKind::kData || later.kind == ClaimKind::kCompressed) &&
                   (earlier.kind == ClaimKind::kData || earlier.kind == ClaimKind::kCompressed);
  if (both_data && later.start == earlier.start) {
    return CorruptImageError(
        "qcow2: host cluster " + Hex(later.start) + " is referenced twice, for guest offsets " +
        Hex(earlier.guest_offset) + " and " + Hex(later.guest_offset) + kCheckAdvice);
  }
  return CorruptImageError("qcow2: " + ClaimText(later) + " overlaps " + ClaimText(earlier) +
                           " (ending at " + Hex(earlier.end) + ")" + kCheckAdvice);
}

Status TruncatedError(uint64_t position, const Claim& claim) {
  return CorruptImageError("qcow2 image is truncated: it ends after " + std::to_string(position) +
                           " bytes, but " + ClaimText(claim) + " needs bytes up to " +
                           Hex(claim.end) + "; fetch the complete image again");
}

}  // namespace cdi::formats::qcow2
