// The spool as the VHD, VHDX and VMDK decoders use it: bytes that pass
// before the table that maps them (a BAT, a grain directory placed after
// the data) wait there until the table is read, and are then written out.
//
//   std::unique_ptr<Spool> spool = MakeTableSpool(&budget, scratch_dir, 512, "VHD");
//   ... spool->Append(offset, bytes) while the table is not read ...
//   SpoolReplay replay(spool.get(), &budget, "blocks");
//   replay.Write(host_offset, length, [&](uint64_t done, std::span<const uint8_t> piece) {...});
//
// Single-threaded, as the spool.
#ifndef CDI_FORMATS_QCOW2_SPOOL_REPLAY_H_
#define CDI_FORMATS_QCOW2_SPOOL_REPLAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"

namespace cdi::formats::qcow2 {

// A spool of `unit_size` units (where the format's blocks or grains may
// start) in 1 MiB memory blocks, which leaves an eighth of the budget (at
// least 2 MiB) free for the tables and the replay buffer. `format` names the
// decoder in messages.
std::unique_ptr<Spool> MakeTableSpool(MemoryBudget* budget, const std::string& scratch_dir,
                                      uint64_t unit_size, const std::string& format);

// Writes spooled bytes out in pieces of at most 1 MiB: straight from memory
// when a piece lies in one memory block, else through a buffer reserved from
// the budget on first use and released with the object.
class SpoolReplay {
 public:
  // `what` names the bytes ("blocks", "grains") in the message of a budget
  // that cannot hold the buffer. Both pointers must outlive the object.
  SpoolReplay(Spool* spool, MemoryBudget* budget, std::string what);

  // Calls `write(done, piece)` for the `length` bytes at `host_offset`, in
  // order (`done`: the bytes before the piece), then takes them from the
  // spool. The whole range must be available (Spool::AvailableLength).
  Status Write(uint64_t host_offset, uint64_t length,
               const std::function<Status(uint64_t done, std::span<const uint8_t> piece)>& write);

 private:
  Spool* spool_;
  MemoryBudget* budget_;
  std::string what_;
  std::vector<uint8_t> buffer_;
  Reservation reservation_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_SPOOL_REPLAY_H_
