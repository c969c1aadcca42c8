// Accounting of the memory a decoder holds against DecoderOptions::memory_budget.
//
// Single-threaded: used only from the thread that feeds the decoder.
#ifndef CDI_FORMATS_QCOW2_MEMORY_BUDGET_H_
#define CDI_FORMATS_QCOW2_MEMORY_BUDGET_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "cdi/status.h"

namespace cdi::formats::qcow2 {

class MemoryBudget {
 public:
  // `format` names the decoder in Exhausted()'s message.
  explicit MemoryBudget(uint64_t budget, std::string format = "qcow2")
      : budget_(budget), format_(std::move(format)) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  uint64_t budget() const { return budget_; }
  uint64_t used() const { return used_; }
  uint64_t peak() const { return peak_; }
  uint64_t available() const { return budget_ - used_; }

  // Called when a reservation does not fit, to free memory held for
  // convenience (the spool moving its bytes to disk). Returns bytes freed.
  void set_reclaimer(std::function<uint64_t(uint64_t wanted)> reclaimer) {
    reclaimer_ = std::move(reclaimer);
  }

  // Reserves `bytes` if they fit, first asking the reclaimer for room.
  bool TryReserve(uint64_t bytes) {
    if (bytes > available() && reclaimer_) reclaimer_(bytes - available());
    return TryReserveNoReclaim(bytes);
  }
  // Reserves only from what is free now, and only if `keep_free` bytes stay free.
  bool TryReserveNoReclaim(uint64_t bytes, uint64_t keep_free = 0) {
    if (bytes > available() || available() - bytes < keep_free) return false;
    used_ += bytes;
    peak_ = std::max(peak_, used_);
    return true;
  }
  void Release(uint64_t bytes) { used_ -= std::min(bytes, used_); }

  // The error for a reservation of `bytes` for `what` that does not fit.
  Status Exhausted(const std::string& what, uint64_t bytes) const {
    return InvalidArgumentError(
        format_ + " decoding needs " + std::to_string(bytes) + " more bytes of memory for " + what +
        ", beyond the memory budget of " + std::to_string(budget_) + " bytes (" +
        std::to_string(used_) + " in use); raise the memory budget");
  }

 private:
  uint64_t budget_;
  std::string format_;
  uint64_t used_ = 0;
  uint64_t peak_ = 0;
  std::function<uint64_t(uint64_t)> reclaimer_;
};

// Bytes reserved from a MemoryBudget, released at scope end (RAII).
class Reservation {
 public:
  Reservation() = default;
  Reservation(MemoryBudget* budget, uint64_t bytes) : budget_(budget), bytes_(bytes) {}
  ~Reservation() { Reset(); }
  Reservation(Reservation&& other) noexcept
      : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  Reservation& operator=(Reservation&& other) noexcept {
    if (this != &other) {
      Reset();
      budget_ = std::exchange(other.budget_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;

  uint64_t bytes() const { return bytes_; }

  // Grows or shrinks the reservation to `bytes`; false (and unchanged) when
  // growth does not fit. kNo keeps the reclaimer out (for callers inside it).
  enum class Reclaim { kAllowed, kNo };
  bool Resize(MemoryBudget* budget, uint64_t bytes, Reclaim reclaim = Reclaim::kAllowed) {
    if (budget_ == nullptr) budget_ = budget;
    if (bytes > bytes_) {
      bool reserved = reclaim == Reclaim::kAllowed ? budget_->TryReserve(bytes - bytes_)
                                                   : budget_->TryReserveNoReclaim(bytes - bytes_);
      if (!reserved) return false;
    } else {
      budget_->Release(bytes_ - bytes);
    }
    bytes_ = bytes;
    return true;
  }

  void Reset() {
    if (budget_ != nullptr) budget_->Release(bytes_);
    bytes_ = 0;
  }

 private:
  MemoryBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_MEMORY_BUDGET_H_
