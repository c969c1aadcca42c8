#include "formats/qcow2/taken_back_log.h"

#include <algorithm>

namespace cdi::formats::qcow2 {

void TakenBackLog::Note(uint64_t position, uint64_t host_offset) {
  if (!entries_.empty() && entries_.back().position == position) {
    entries_.back().host_offset = std::min(entries_.back().host_offset, host_offset);
    return;
  }
  if (entries_.size() >= kMaxEntries) {
    Entry merged{position, host_offset};
    for (const Entry& e : entries_) merged.host_offset = std::min(merged.host_offset, e.host_offset);
    entries_.assign(1, merged);
    return;
  }
  entries_.push_back({position, host_offset});
}

uint64_t TakenBackLog::Before(uint64_t at) const {
  for (bool moved = true; moved;) {
    moved = false;
    for (const Entry& e : entries_) {
      if (e.host_offset < at && at <= e.position) {
        at = e.host_offset;
        moved = true;
      }
    }
  }
  return at;
}

}  // namespace cdi::formats::qcow2
