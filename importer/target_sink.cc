#include "importer/target_sink.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace cdi::importer {

bool IsAllZero(const uint8_t* data, size_t length) {
  // Check a short prefix, then compare the buffer with itself shifted by that
  // prefix: memcmp is vectorised, so this runs at memory speed.
  constexpr size_t kPrefix = 16;
  if (length <= kPrefix) {
    for (size_t i = 0; i < length; ++i) {
      if (data[i] != 0) return false;
    }
    return true;
  }
  for (size_t i = 0; i < kPrefix; ++i) {
    if (data[i] != 0) return false;
  }
  return std::memcmp(data, data + kPrefix, length - kPrefix) == 0;
}

TargetSink::TargetSink(std::vector<SinkTarget> targets) : targets_(std::move(targets)) {}

Status TargetSink::Begin(const formats::ImageDescription& image) {
  if (begun_) return InternalError("decoder began the image twice");
  begun_ = true;
  virtual_size_ = image.virtual_size;
  uint64_t smallest_capacity = UINT64_MAX;
  for (const SinkTarget& t : targets_) smallest_capacity = std::min(smallest_capacity, t.target->capacity());

  if (image.virtual_size) {
    const uint64_t virtual_size = *image.virtual_size;
    // Fail before writing anything, with the message CDI's controller knows.
    for (const SinkTarget& t : targets_) {
      if (virtual_size > t.target->capacity()) {
        return TooSmallError("virtual image size " + std::to_string(virtual_size) +
                             " is larger than the reported available storage " +
                             std::to_string(t.target->capacity()) +
                             ". A larger PVC is required");
      }
    }
    limit_ = virtual_size;
  } else {
    // A stream whose length shows at its end: it may fill the smallest target.
    limit_ = smallest_capacity;
  }

  for (const SinkTarget& t : targets_) {
    if (t.target->kind() == pvc::TargetKind::kBlockDevice) continue;
    if (t.sizing == Sizing::kToCapacity) {
      CDI_RETURN_IF_ERROR(t.target->SetSize(t.target->capacity()));
    } else if (image.virtual_size) {
      CDI_RETURN_IF_ERROR(t.target->SetSize(*image.virtual_size));
    }
  }
  return Status::Ok();
}

Status TargetSink::CheckRange(uint64_t guest_offset, uint64_t length) const {
  if (!begun_) return InternalError("decoder wrote before describing the image");
  if (guest_offset > limit_ || length > limit_ - guest_offset) {
    if (!virtual_size_) {
      return TooSmallError("the image is larger than the reported available storage " +
                           std::to_string(limit_) + " (its data continues past that offset)" +
                           ". A larger PVC is required");
    }
    return CorruptImageError("image data at guest offset " + std::to_string(guest_offset) +
                             " (+" + std::to_string(length) + ") lies past its virtual size " +
                             std::to_string(*virtual_size_));
  }
  return Status::Ok();
}

Status TargetSink::Write(uint64_t guest_offset, std::span<const uint8_t> data) {
  CDI_RETURN_IF_ERROR(CheckRange(guest_offset, data.size()));
  // Split at kZeroBlockSize boundaries of the guest; runs of all-zero blocks
  // become zero ranges, runs of data become one write each.
  size_t pos = 0;
  while (pos < data.size()) {
    size_t run_start = pos;
    bool run_zero = false;
    bool first = true;
    while (pos < data.size()) {
      uint64_t offset = guest_offset + pos;
      size_t block = static_cast<size_t>(
          std::min<uint64_t>(kZeroBlockSize - offset % kZeroBlockSize, data.size() - pos));
      bool zero = IsAllZero(data.data() + pos, block);
      if (first) {
        run_zero = zero;
        first = false;
      } else if (zero != run_zero) {
        break;
      }
      pos += block;
    }
    uint64_t run_offset = guest_offset + run_start;
    size_t run_length = pos - run_start;
    if (run_zero) {
      CDI_RETURN_IF_ERROR(AddZero(run_offset, run_length));
    } else {
      CDI_RETURN_IF_ERROR(WriteData(run_offset, data.subspan(run_start, run_length)));
    }
  }
  return Status::Ok();
}

Status TargetSink::Zero(uint64_t guest_offset, uint64_t length) {
  CDI_RETURN_IF_ERROR(CheckRange(guest_offset, length));
  return AddZero(guest_offset, length);
}

Status TargetSink::WriteData(uint64_t guest_offset, std::span<const uint8_t> data) {
  // Keep the targets' operations in stream order: a raw image then reaches a
  // block device as one sequential pass.
  CDI_RETURN_IF_ERROR(FlushZero());
  for (const SinkTarget& t : targets_) {
    touched_ = true;
    CDI_RETURN_IF_ERROR(t.target->Write(guest_offset, data));
  }
  bytes_written_ += data.size();
  guest_bytes_ += data.size();
  covered_end_ = std::max(covered_end_, guest_offset + data.size());
  return Status::Ok();
}

Status TargetSink::AddZero(uint64_t guest_offset, uint64_t length) {
  if (length == 0) return Status::Ok();
  guest_bytes_ += length;
  bytes_zero_ += length;
  covered_end_ = std::max(covered_end_, guest_offset + length);
  // Coalesce adjacent zero ranges so that a block device gets few, large
  // zeroing operations instead of one per 4 KiB block.
  if (zero_end_ > zero_start_ && guest_offset == zero_end_) {
    zero_end_ += length;
    return Status::Ok();
  }
  CDI_RETURN_IF_ERROR(FlushZero());
  zero_start_ = guest_offset;
  zero_end_ = guest_offset + length;
  return Status::Ok();
}

Status TargetSink::FlushZero() {
  if (zero_end_ <= zero_start_) return Status::Ok();
  for (const SinkTarget& t : targets_) {
    if (t.target->kind() == pvc::TargetKind::kBlockDevice) touched_ = true;
    CDI_RETURN_IF_ERROR(t.target->Zero(zero_start_, zero_end_ - zero_start_));
  }
  zero_start_ = zero_end_ = 0;
  return Status::Ok();
}

Result<uint64_t> TargetSink::Finalize() {
  if (!begun_) return InternalError("the decoder finished without describing the image");
  CDI_RETURN_IF_ERROR(FlushZero());
  const uint64_t virtual_size = virtual_size_.value_or(covered_end_);
  // Every byte of the image must have been written or zeroed exactly once;
  // otherwise a block device would keep stale data where the image has none.
  if (guest_bytes_ != virtual_size) {
    return InternalError("the decoder covered " + std::to_string(guest_bytes_) + " of " +
                         std::to_string(virtual_size) + " image bytes");
  }
  for (const SinkTarget& t : targets_) {
    pvc::Target& target = *t.target;
    if (target.kind() == pvc::TargetKind::kBlockDevice) {
      // Whatever the device held before must not show through past the image.
      if (target.size() > virtual_size) {
        touched_ = true;
        CDI_RETURN_IF_ERROR(target.Zero(virtual_size, target.size() - virtual_size));
      }
    } else if (!virtual_size_ && t.sizing == Sizing::kToVirtualSize) {
      CDI_RETURN_IF_ERROR(target.SetSize(virtual_size));
    }
  }
  return virtual_size;
}

}  // namespace cdi::importer
