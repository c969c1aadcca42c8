#include "formats/qcow2/spool_replay.h"

#include <algorithm>
#include <utility>

#include "cdi/quantity.h"

namespace cdi::formats::qcow2 {
namespace {

constexpr uint64_t kPiece = kMiB;
constexpr uint64_t kMinHeadroom = 2 * kMiB;

}  // namespace

std::unique_ptr<Spool> MakeTableSpool(MemoryBudget* budget, const std::string& scratch_dir,
                                      uint64_t unit_size, const std::string& format) {
  Spool::Options options;
  options.budget = budget;
  options.scratch_dir = scratch_dir;
  options.unit_size = unit_size;
  options.block_size = kMiB;
  options.keep_free = std::max(kMinHeadroom, budget->budget() / 8);
  options.format = format;
  return std::make_unique<Spool>(options);
}

SpoolReplay::SpoolReplay(Spool* spool, MemoryBudget* budget, std::string what)
    : spool_(spool), budget_(budget), what_(std::move(what)) {}

Status SpoolReplay::Write(
    uint64_t host_offset, uint64_t length,
    const std::function<Status(uint64_t done, std::span<const uint8_t> piece)>& write) {
  for (uint64_t done = 0; done < length;) {
    const uint64_t piece_length = std::min(kPiece, length - done);
    if (auto view = spool_->View(host_offset + done, piece_length)) {
      CDI_RETURN_IF_ERROR(write(done, view->bytes));
    } else {
      if (buffer_.empty()) {
        if (!reservation_.Resize(budget_, kPiece)) {
          if (!spool_->deferred_error().ok()) return spool_->deferred_error();
          return budget_->Exhausted("the buffer that writes out spooled " + what_, kPiece);
        }
        buffer_.resize(kPiece);
      }
      const std::span<uint8_t> piece(buffer_.data(), static_cast<size_t>(piece_length));
      CDI_RETURN_IF_ERROR(spool_->Read(host_offset + done, piece));
      CDI_RETURN_IF_ERROR(write(done, piece));
    }
    done += piece_length;
  }
  spool_->Take(host_offset, length);
  return Status::Ok();
}

}  // namespace cdi::formats::qcow2
