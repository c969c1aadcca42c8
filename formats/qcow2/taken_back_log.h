// Where a qcow2 resume point may not lie because a table took back bytes.
//
// A table read at host offset P that maps bytes at H < P (bytes that passed
// before their table, kept by the gaps) takes them back from the gaps. A
// point S with H < S <= P would lose them: a decoder continued at S reads
// that table in the stream, but does not hold what passed before S. So such
// a point moves to H, and again for every table it then falls before.
//
//   TakenBackLog log;
//   log.Note(position, host_offset);      // as a table takes back bytes
//   uint64_t at = log.Before(candidate);  // a point no table forbids
//
// Bounded: past kMaxEntries the entries merge into one, which forbids at
// least what they did. Thread-safety: none.
#ifndef CDI_FORMATS_QCOW2_TAKEN_BACK_LOG_H_
#define CDI_FORMATS_QCOW2_TAKEN_BACK_LOG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cdi::formats::qcow2 {

class TakenBackLog {
 public:
  static constexpr size_t kMaxEntries = 1024;

  // A table read at `position` took back bytes at `host_offset` (< position).
  void Note(uint64_t position, uint64_t host_offset);
  // `at`, or the earliest offset it must move to.
  uint64_t Before(uint64_t at) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t position = 0;
    uint64_t host_offset = 0;  // the lowest taken back at `position`
  };
  std::vector<Entry> entries_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_TAKEN_BACK_LOG_H_
