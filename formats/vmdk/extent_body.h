// What follows the header and the embedded descriptor of a VMDK sparse
// extent: the grains (with their tables), decoded into a GuestWriter.
//
// The decoder (vmdk_decoder.h) reads the header and the descriptor, calls
// GuestWriter::Begin, then hands every later byte, in order, to the body for
// the subformat: vmdk_stream_decoder.h (streamOptimized) or
// vmdk_sparse_decoder.h (monolithicSparse). A body's Finish() reports a
// truncated image and covers what no grain covered with Zero().
#ifndef CDI_FORMATS_VMDK_EXTENT_BODY_H_
#define CDI_FORMATS_VMDK_EXTENT_BODY_H_

#include <cstdint>
#include <span>
#include <string>

#include "cdi/status.h"
#include "formats/decoder.h"

namespace cdi::formats::vmdk {

class ExtentBody {
 public:
  virtual ~ExtentBody() = default;
  // The next bytes of the image, in order.
  virtual Status Feed(std::span<const uint8_t> bytes) = 0;
  // End of the image.
  virtual Status Finish() = 0;
  // Adds the body's own details to the image's description.
  virtual void AddDetails(ImageDescription& /*description*/) const {}
};

// The error for `bytes` of memory for `what` past DecoderOptions::memory_budget.
inline Status MemoryBudgetError(const std::string& what, uint64_t bytes, uint64_t budget) {
  return InvalidArgumentError("vmdk decoding needs " + std::to_string(bytes) +
                              " bytes of memory for " + what + ", beyond the memory budget of " +
                              std::to_string(budget) + " bytes; raise the memory budget");
}

// The error for an image that ends at `position` while `what` was expected.
inline Status TruncatedError(uint64_t position, const std::string& what) {
  return CorruptImageError("vmdk image is truncated: it ends after " + std::to_string(position) +
                           " bytes, before " + what + "; fetch it again");
}

}  // namespace cdi::formats::vmdk

#endif  // CDI_FORMATS_VMDK_EXTENT_BODY_H_
