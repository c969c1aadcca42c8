#include "common/log.h"
#include "common/zero.h"
#include "importer/target_sink.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace cdi::importer {

TargetSink::TargetSink(std::vector<SinkTarget> targets)
    : targets_(std::move(targets)), failures_(targets_.size()) {}

namespace {

Status TooSmallFor(uint64_t virtual_size, uint64_t capacity) {
  // CDI's message: its controller turns it into "DataVolume too small".
  return TooSmallError("virtual image size " + std::to_string(virtual_size) +
                       " is larger than the reported available storage " +
                       std::to_string(capacity) + ". A larger PVC is required");
}

Status StreamTooLargeFor(uint64_t capacity) {
  return TooSmallError("the image is larger than the reported available storage " +
                       std::to_string(capacity) + " (its data continues past that offset)" +
                       ". A larger PVC is required");
}

}  // namespace

Status TargetSink::Drop(size_t i, Status status) {
  failures_[i] = status;
  if (targets_.size() > 1) {
    Logger()->warn("{}: {}; the other targets go on", targets_[i].target->path(), status.message());
  }
  for (size_t j = 0; j < targets_.size(); ++j) {
    if (live(j)) return Status::Ok();
  }
  for (const Status& failure : failures_) {
    if (failure.code() == ErrorCode::kTooSmall) return failure;
  }
  return failures_.front();
}

Status TargetSink::Begin(const formats::ImageDescription& image) {
  if (begun_) return InternalError("decoder began the image twice");
  begun_ = true;
  virtual_size_ = image.virtual_size;
  uint64_t largest_capacity = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const uint64_t capacity = targets_[i].target->capacity();
    // Fail before writing anything to a target the image cannot fit.
    if (image.virtual_size && *image.virtual_size > capacity) {
      CDI_RETURN_IF_ERROR(Drop(i, TooSmallFor(*image.virtual_size, capacity)));
      continue;
    }
    largest_capacity = std::max(largest_capacity, capacity);
  }
  // A stream whose length shows at its end may fill the largest target;
  // smaller ones drop out when it passes them.
  limit_ = image.virtual_size.value_or(largest_capacity);

  for (size_t i = 0; i < targets_.size(); ++i) {
    pvc::Target& target = *targets_[i].target;
    if (!live(i) || target.kind() == pvc::TargetKind::kBlockDevice) continue;
    Status status = Status::Ok();
    if (targets_[i].sizing == Sizing::kToCapacity) {
      status = target.SetSize(target.capacity());
    } else if (image.virtual_size) {
      status = target.SetSize(*image.virtual_size);
    }
    if (!status.ok()) CDI_RETURN_IF_ERROR(Drop(i, status));
  }
  return Status::Ok();
}

Status TargetSink::CheckRange(uint64_t guest_offset, uint64_t length) const {
  if (!begun_) return InternalError("decoder wrote before describing the image");
  if (guest_offset > limit_ || length > limit_ - guest_offset) {
    if (!virtual_size_) return StreamTooLargeFor(limit_);
    return CorruptImageError("image data at guest offset " + std::to_string(guest_offset) +
                             " (+" + std::to_string(length) + ") lies past its virtual size " +
                             std::to_string(*virtual_size_));
  }
  return Status::Ok();
}

Status TargetSink::DropTargetsSmallerThan(uint64_t end) {
  if (virtual_size_) return Status::Ok();  // sizes were checked at Begin
  for (size_t i = 0; i < targets_.size(); ++i) {
    const uint64_t capacity = targets_[i].target->capacity();
    if (live(i) && end > capacity) CDI_RETURN_IF_ERROR(Drop(i, StreamTooLargeFor(capacity)));
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
      bool zero = IsAllZero(std::span<const uint8_t>(data.data() + pos, block));
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

Status TargetSink::Kept(uint64_t guest_offset, uint64_t length) {
  CDI_RETURN_IF_ERROR(CheckRange(guest_offset, length));
  guest_bytes_ += length;
  covered_end_ = std::max(covered_end_, guest_offset + length);
  return Status::Ok();
}

Status TargetSink::Shrink(uint64_t virtual_size) {
  if (!begun_ || !virtual_size_ || shrunk_) {
    return InternalError("the decoder shrank an image it did not announce a size for, or twice");
  }
  if (virtual_size > *virtual_size_ || covered_end_ > virtual_size) {
    return InternalError("the decoder shrank the image from " + std::to_string(*virtual_size_) +
                         " to " + std::to_string(virtual_size) + " bytes, below what it covered (" +
                         std::to_string(covered_end_) + ")");
  }
  shrunk_ = true;
  virtual_size_ = virtual_size;
  limit_ = virtual_size;
  return Status::Ok();
}

Status TargetSink::WriteData(uint64_t guest_offset, std::span<const uint8_t> data) {
  // Keep the targets' operations in stream order: a raw image then reaches a
  // block device as one sequential pass.
  CDI_RETURN_IF_ERROR(FlushZero());
  CDI_RETURN_IF_ERROR(DropTargetsSmallerThan(guest_offset + data.size()));
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (!live(i)) continue;
    Status status = targets_[i].target->Write(guest_offset, data);
    if (!status.ok()) CDI_RETURN_IF_ERROR(Drop(i, status));
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
  CDI_RETURN_IF_ERROR(DropTargetsSmallerThan(zero_end_));
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (!live(i)) continue;
    Status status = targets_[i].target->Zero(zero_start_, zero_end_ - zero_start_);
    if (!status.ok()) CDI_RETURN_IF_ERROR(Drop(i, status));
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
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (!live(i)) continue;
    pvc::Target& target = *targets_[i].target;
    Status status = Status::Ok();
    if (target.kind() == pvc::TargetKind::kBlockDevice) {
      // Whatever the device held before must not show through past the image.
      if (target.size() > virtual_size) {
        status = target.Zero(virtual_size, target.size() - virtual_size);
      }
    } else if ((!virtual_size_ || shrunk_) && targets_[i].sizing == Sizing::kToVirtualSize) {
      status = target.SetSize(virtual_size);
    }
    if (!status.ok()) CDI_RETURN_IF_ERROR(Drop(i, status));
  }
  return virtual_size;
}

}  // namespace cdi::importer
