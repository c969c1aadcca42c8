// The importer's GuestWriter: checks the image against its targets, leaves
// all-zero blocks unwritten, and fans every write out to every target. It is
// the one place zero ranges are found in the data decoders hand on: decoders
// pass data as it is (formats/decoder.h).
#ifndef CDI_IMPORTER_TARGET_SINK_H_
#define CDI_IMPORTER_TARGET_SINK_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "formats/decoder.h"
#include "pvc/target.h"

namespace cdi::importer {

// Blocks of this size, aligned to guest offsets, are checked for zeros.
inline constexpr uint64_t kZeroBlockSize = 4096;

// How a target's final size is chosen once the image's virtual size is known.
enum class Sizing {
  kToCapacity,     // grow to the target's capacity (a requested size, or a device)
  kToVirtualSize,  // exactly the image's virtual size
};

struct SinkTarget {
  pvc::Target* target = nullptr;  // not owned
  Sizing sizing = Sizing::kToVirtualSize;
};

// Several targets receive the same image. A target that cannot take it (too
// small, or its storage fails) drops out with its own Status while the others
// go on; the sink fails only when no target is left.
//
// Not thread-safe: driven from the decoding thread.
class TargetSink : public formats::GuestWriter {
 public:
  explicit TargetSink(std::vector<SinkTarget> targets);

  Status Begin(const formats::ImageDescription& image) override;
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override;
  Status Zero(uint64_t guest_offset, uint64_t length) override;
  // A continued qcow2 image: ranges an earlier import wrote count as covered.
  Status Kept(uint64_t guest_offset, uint64_t length) override;
  // A file sized to the virtual size gets the lowered size at Finalize(); a
  // block device has what lies past it zeroed there.
  bool CanShrink() const override { return true; }
  Status Shrink(uint64_t virtual_size) override;

  // After the decoder finished: issues pending zeroing, sets each file's final
  // size, zeroes what a block device holds past the image. Returns the image's
  // virtual size.
  Result<uint64_t> Finalize();

  // Before Begin: the image's first `covered` bytes are on the targets
  // already (an import continued from a checkpoint): they count as covered,
  // not as written, and the decoder goes on from there.
  void ResumeAt(uint64_t covered) { guest_bytes_ = covered_end_ = covered; }

  bool begun() const { return begun_; }
  std::optional<uint64_t> virtual_size() const { return virtual_size_; }
  // Image bytes handled so far (written or zero), for progress.
  uint64_t guest_bytes() const { return guest_bytes_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t bytes_zero() const { return bytes_zero_; }
  // Why target `i` (in constructor order) dropped out; ok while it is live.
  const Status& failure(size_t i) const { return failures_[i]; }

 private:
  bool live(size_t i) const { return failures_[i].ok(); }
  // Records `status` as target i's failure; returns an error only when that
  // leaves no target (the first failure, which says most about the image).
  Status Drop(size_t i, Status status);
  Status CheckRange(uint64_t guest_offset, uint64_t length) const;
  Status WriteData(uint64_t guest_offset, std::span<const uint8_t> data);
  Status AddZero(uint64_t guest_offset, uint64_t length);
  Status FlushZero();
  // For a stream of unknown size: drops the targets that `end` would overflow.
  Status DropTargetsSmallerThan(uint64_t end);

  std::vector<SinkTarget> targets_;
  std::vector<Status> failures_;
  bool begun_ = false;
  std::optional<uint64_t> virtual_size_;
  bool shrunk_ = false;        // the decoder lowered the size given at Begin
  uint64_t limit_ = 0;         // no byte at or past this offset may be covered
  uint64_t covered_end_ = 0;   // end of the highest range covered
  uint64_t guest_bytes_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t bytes_zero_ = 0;
  uint64_t zero_start_ = 0;    // pending zero range [zero_start_, zero_end_)
  uint64_t zero_end_ = 0;
};

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_TARGET_SINK_H_
