// The coverage half of the GuestWriter contract (formats/decoder.h), checked
// in one place for the tests and fuzz targets that watch a decoder: Begin()
// once, before any range; every range non-empty, inside the virtual size when
// the image has one, and covering no byte twice; after a successful Finish(),
// [0, virtual size) covered without a gap (without a virtual size,
// [0, end of the last range)).
//
// A writer under test calls Begin() and Range() from its own Begin(), Write()
// and Zero(), and Complete() after Finish(); each returns what broke the
// contract, or "" when the call kept it. What to do with a violation (record
// it, fail the test, abort the fuzz run) is the writer's choice.
#ifndef CDI_TEST_SUPPORT_GUEST_COVERAGE_H_
#define CDI_TEST_SUPPORT_GUEST_COVERAGE_H_

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include "formats/decoder.h"

namespace cdi::test {

// Disjoint [start, end) ranges, merged when they touch.
class RangeSet {
 public:
  // False (and nothing added) when the range overlaps one already present.
  bool Add(uint64_t start, uint64_t end) {
    if (start >= end) return true;
    auto next = ranges_.lower_bound(start);
    if (next != ranges_.end() && next->first < end) return false;
    if (next != ranges_.begin()) {
      auto prev = std::prev(next);
      if (prev->second > start) return false;
      if (prev->second == start) {
        start = prev->first;
        ranges_.erase(prev);
      }
    }
    if (next != ranges_.end() && next->first == end) {
      end = next->second;
      ranges_.erase(next);
    }
    ranges_[start] = end;
    return true;
  }
  bool Contains(uint64_t start, uint64_t end) const {
    if (start >= end) return true;
    auto it = ranges_.upper_bound(start);
    if (it == ranges_.begin()) return false;
    --it;
    return it->first <= start && it->second >= end;
  }
  uint64_t Total() const {
    uint64_t total = 0;
    for (const auto& [start, end] : ranges_) total += end - start;
    return total;
  }
  // One past the highest byte present.
  uint64_t End() const { return ranges_.empty() ? 0 : std::prev(ranges_.end())->second; }
  bool empty() const { return ranges_.empty(); }
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }
  std::string ToString() const {
    std::string text;
    for (const auto& [start, end] : ranges_) {
      if (!text.empty()) text += " ";
      text += "[" + std::to_string(start) + ", " + std::to_string(end) + ")";
    }
    return text;
  }

 private:
  std::map<uint64_t, uint64_t> ranges_;
};

class GuestCoverage {
 public:
  std::string Begin(const formats::ImageDescription& image) {
    ++begin_calls_;
    if (begin_calls_ > 1) return "Begin() called again";
    if (!covered_.empty()) return "Begin() after a write";
    virtual_size_ = image.virtual_size;
    return "";
  }

  std::string Range(uint64_t offset, uint64_t length) {
    std::string where = "[" + std::to_string(offset) + ", +" + std::to_string(length) + ")";
    if (begin_calls_ == 0) return "a write before Begin(): " + where;
    if (length == 0) return "an empty range at " + std::to_string(offset);
    if (virtual_size_ && (offset > *virtual_size_ || length > *virtual_size_ - offset)) {
      return where + " is outside the virtual size " + std::to_string(*virtual_size_);
    }
    if (!covered_.Add(offset, offset + length)) return where + " overlaps a range covered before";
    return "";
  }

  std::string Complete() const {
    if (begin_calls_ != 1) return "Begin() called " + std::to_string(begin_calls_) + " times";
    uint64_t end = virtual_size_.value_or(covered_.End());
    if (end > 0 && !covered_.Contains(0, end)) {
      return "[0, " + std::to_string(end) + ") not covered without a gap; covered: " +
             covered_.ToString();
    }
    return "";
  }

  bool begun() const { return begin_calls_ > 0; }
  const std::optional<uint64_t>& virtual_size() const { return virtual_size_; }
  const RangeSet& covered() const { return covered_; }

 private:
  int begin_calls_ = 0;
  std::optional<uint64_t> virtual_size_;
  RangeSet covered_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_GUEST_COVERAGE_H_
