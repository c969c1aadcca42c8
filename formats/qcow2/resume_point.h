// Continuing a qcow2 image that an earlier import decoded up to a host
// offset: which metadata before that offset the decoder needs again, and how
// it is handed to the decoder.
//
// An import that dies keeps a checkpoint at a source offset S where the
// decoder stood clean (Decoder::ResumePoint): every guest write of the host
// bytes before S is on the target, and nothing before S waits in the spool.
// The next import fetches again what of the metadata lies before S (the
// header, the active L1 table, the L2 tables it names; never refcounts or
// snapshots, which only let the decoder drop bytes earlier), hands it to
// MakeResumedQcow2Decoder, and streams the image from S. Data before S is
// counted as already on the target (GuestWriter::Kept), never written again.
//
//   Qcow2MetadataPlan plan(S, container_size);
//   while (auto wanted = plan.Wanted()) CDI_RETURN_IF_ERROR(plan.Give(wanted->start, bytes));
//   Qcow2Resume resume = plan.Take();
//
// Pure byte logic: the caller does the fetching. Thread-safety: none.
#ifndef CDI_FORMATS_QCOW2_RESUME_POINT_H_
#define CDI_FORMATS_QCOW2_RESUME_POINT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/qcow2_header.h"

namespace cdi::formats {

// Bytes of the image at a host offset.
struct HostBytes {
  uint64_t offset = 0;
  std::vector<uint8_t> bytes;
};

// What a decoder continuing at `at` is fed before the stream: the metadata
// before `at`, in host order, the header first.
struct Qcow2Resume {
  uint64_t at = 0;
  std::vector<HostBytes> metadata;
};

// Ranges of metadata wanted from the image, one after another.
class Qcow2MetadataPlan {
 public:
  // `at`: where the stream continues; `container_size`: the image's length.
  Qcow2MetadataPlan(uint64_t at, uint64_t container_size);

  // The next host range to fetch; nullopt when the plan is complete.
  std::optional<qcow2::Extent> Wanted() const;
  // The bytes of the range Wanted() returned. kCorruptImage or kUnsupported
  // when the header or L1 table is not one to continue from (say so and
  // start over).
  Status Give(uint64_t offset, std::span<const uint8_t> bytes);
  // Once Wanted() is nullopt.
  Qcow2Resume Take() { return std::move(resume_); }

 private:
  enum class Stage { kHeader, kL1, kL2, kDone };
  // Adds the L2 tables the L1 table names before `at_`, coalescing the fetches
  // of neighbours.
  Status PlanL2Tables(std::span<const uint8_t> l1);

  const uint64_t at_;
  const uint64_t container_size_;
  Stage stage_ = Stage::kHeader;
  uint64_t header_wanted_ = 4096;
  std::optional<qcow2::Header> header_;
  std::vector<uint64_t> l2_tables_;     // host offsets, sorted
  std::vector<qcow2::Extent> fetches_;  // coalesced ranges still to fetch
  Qcow2Resume resume_;
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_QCOW2_RESUME_POINT_H_
