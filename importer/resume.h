// Resuming an import that died: the checkpoints of one import into one file
// target (importer/checkpoint.h), from the moment its target is open to its
// end.
//
//   Resumer resumer(spec);                         // ResumeMode::kCheckpoints, Eligible
//   open the target with pvc::StalePartial::kKeep   // its lock is held from here
//   CDI_ASSIGN_OR_RETURN(auto from, resumer.Prepare(target));    // a resume point, or none
//   open the source (HttpSourceOptions: resume_from, served)
//   CDI_RETURN_IF_ERROR(resumer.SourceOpened(*served, target));  // the server agreed, or not
//   ... resumer.AfterFeed(reached, target) after each chunk (writes checkpoints) ...
//   success: resumer.Finished(); failure: resumer.Failed(status) says whether to keep the target
//
// A file target keeps its checkpoint beside its partial file. A block device
// keeps it in ResumeSettings::checkpoint_dir (the importer pod's scratch
// volume, which CDI makes for one PVC's import), and its bytes stay on the
// device when the import dies (pvc::Target::Keep): nothing is cut or
// emptied on a device, since an import that continues writes every byte
// past its point, and one that starts over writes every byte.
//
// Everything that cannot continue (no checkpoint, a damaged one, another
// image, another target or size, a partial file shorter than claimed, a
// server that sends another image) starts over at byte 0 and says why in
// one log line.
//
// Two formats are continued. A raw image: a checkpoint claims the image's
// bytes up to a 1 MiB boundary, and the source continues there. A raw image
// in zstd frames ("zstd+raw"): a checkpoint is taken only between two
// frames, and claims the compressed bytes before that point and the image
// bytes they decompress to; the next import fetches from there and starts
// a fresh frame decoder. An image compressed as one frame gets no checkpoint
// before its end (said once in the log). A raw image in an xz stream of
// several blocks ("xz+raw") likewise, between two blocks, the checkpoint
// also naming the stream's check and start (importer/resume_xz.h); the next
// import decodes block by block from there and checks the stream's Index
// against the point (formats/xz_blocks.h). A checksum covers the bytes as
// served: for a raw image the resumed part is read back from the target; a
// zstd or xz image is not continued when a checksum is asked for, since the
// target does not hold its compressed bytes.
//
// A qcow2 image (no wrapper; "qcow2") is continued too: a checkpoint claims
// a resume point of the decoder (formats/qcow2/resume_point.h: every guest
// write of the source bytes before it is on the target, and nothing before
// it waits in the decoder's spool) with the partial file as it is. The next
// import fetches the header and tables before that point again with ranged
// requests (importer/qcow2_resume.h), then the source from there. A checksum
// covers the qcow2 file as served, which the target does not hold: such an
// import is not continued.
//
// Thread-safety: one thread, the import's, calls it; each checkpoint's sync
// and file are written by a thread of its own (one syncing, at most one
// queued behind it, in order), which touches nothing of the Resumer's.
#ifndef CDI_IMPORTER_RESUME_H_
#define CDI_IMPORTER_RESUME_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "formats/pipeline.h"
#include "importer/checkpoint.h"
#include "importer/checksum.h"
#include "pvc/target.h"
#include "sources/http/http_source.h"

namespace cdi::importer {

// Checkpoints go on the target's filesystem at 1 MiB boundaries of the image:
// a checkpoint claims the bytes before the last boundary that is on the target.
inline constexpr uint64_t kCheckpointAlignment = kMiB;

// The formats a checkpoint names: a raw image, a raw image in zstd frames,
// and a raw image in xz blocks.
inline constexpr std::string_view kRawFormat = "raw";
inline constexpr std::string_view kZstdRawFormat = "zstd+raw";
inline constexpr std::string_view kXzRawFormat = "xz+raw";

// Where an import stands after a chunk went through the pipeline.
struct Reached {
  // The pipeline's format chain so far ({"raw"}, {"zstd", "raw"}, ...);
  // empty before the decoder began the image.
  std::vector<std::string> chain;
  // Source bytes fed to the pipeline, the resumed part included.
  uint64_t source_offset = 0;
  // The end of the image bytes the target sink holds (written or zero, in
  // order), the resumed part included.
  uint64_t covered = 0;
  // For zstd and xz: ImagePipeline::TakeFrameBoundary(covered).
  std::optional<formats::FrameBoundary> frame_boundary;
  // For qcow2: ImagePipeline::Qcow2ResumePoint, asked only when a
  // checkpoint is due.
  std::function<Result<std::optional<formats::ResumeAt>>()> qcow2_point;
};
// "" when `spec` can use checkpoints (one file target, a disk image from an
// http(s) URL that Import opens itself); otherwise why not, for the log.
std::string WhyNoCheckpoints(const ImportSpec& spec, bool source_given);

class Resumer {
 public:
  explicit Resumer(const ImportSpec& spec);

  // With the target open and locked (its stale partial file kept): the
  // checkpoint beside it, when it matches this import and the partial file
  // holds what it claims; the target is then cut to the bytes it claims.
  // Otherwise the target is emptied, the checkpoint removed, and nullopt.
  Result<std::optional<Checkpoint>> Prepare(pvc::Target& target);

  // The source answered: `served` says where its body starts and what the
  // image is. A resume the server refused (it sent the whole image) empties
  // the target. Afterwards resumed_at() is the source offset this import
  // continues at (0: from the start), resumed_target() the image bytes
  // already on the target in order (0 for qcow2, whose decoder reports
  // them itself), resumed_format() kRawFormat, kZstdRawFormat, kXzRawFormat
  // or kQcow2Format (importer/qcow2_resume.h), resumed_xz_stream() the xz
  // stream the point lies in.
  Status SourceOpened(const HttpResumePoint& served, pvc::Target& target);
  uint64_t resumed_at() const { return resumed_at_; }
  uint64_t resumed_target() const { return resumed_target_; }
  const std::string& resumed_format() const { return format_; }
  const std::optional<formats::XzStreamStart>& resumed_xz_stream() const { return xz_stream_; }
  std::optional<uint64_t> length() const { return identity_.length; }

  // Digests the image's first resumed_at() bytes as the target holds them
  // (for a raw image, the bytes as served: holes read as zeros), so that a
  // checksum covers the whole image.
  Status Rehash(Checksum& checksum) const;

  // After each chunk: starts a checkpoint when one is due (checkpoint_bytes
  // of the source since the last one, or checkpoint_interval), a point to
  // continue from was reached, and fewer than two are on their way. The target's
  // staged writes go out here; a thread of the checkpoint's own then syncs
  // the target (fdatasync) and writes the checkpoint, while the import goes
  // on. Chains other than raw (bare, in zstd frames, in xz blocks) and qcow2
  // turn checkpoints off with a log line.
  // A checkpoint that cannot be written turns checkpoints off with a
  // warning; a sync that fails fails the import (here, or at Drain).
  Status AfterFeed(const Reached& reached, pvc::Target& target);

  // Waits for the checkpoint on its way, if any; called before the targets
  // are committed, so that none is written after. Its sync's failure.
  Status Drain();

  // Before the source is opened: the checkpoint found cannot be continued
  // after all (`why`, for the log): the target is emptied, the checkpoint
  // removed, and the import starts at byte 0.
  Status StartOver(pvc::Target& target, const std::string& why);

  // The import succeeded: its checkpoint goes (after the one on its way).
  void Finished();
  // The import failed with `status` (the checkpoint on its way waited for
  // first): true when the target should be kept
  // for the next import to continue (cancelled by a signal, or a network
  // failure, with a checkpoint on disk); otherwise the checkpoint goes.
  bool Failed(const Status& status);

  uint64_t checkpoints_written() const { return written_; }
  // The import's own time spent on checkpoints (handing staged writes on,
  // asking the qcow2 decoder for a point).
  std::chrono::nanoseconds checkpoint_time() const { return spent_; }

 private:
  // What the checkpoints' threads did since the last Harvest, folded into
  // one (no checkpoint is written after a failure).
  struct Made {
    Status synced = Status::Ok();   // the target's fdatasync that failed
    Status written = Status::Ok();  // the checkpoint file that could not be written
    uint64_t count = 0;             // checkpoints on disk
    uint64_t source_offset = 0;     // what the last of them claims
    uint64_t target_bytes = 0;
    std::chrono::nanoseconds took{0};
  };
  Checkpoint Wanted() const;
  // Settles the format on the first chain seen; false (checkpoints off, said
  // in the log) when it is not continued.
  bool SettleFormat(const std::vector<std::string>& chain);
  // AfterFeed for a qcow2 image.
  Status AfterFeedQcow2(const Reached& reached, pvc::Target& target);
  // Starts the checkpoint claiming source bytes [0, offset) and target bytes
  // [0, claimed) (after the last one's outcome is taken in); `now` is when
  // AfterFeed began.
  Status Commit(uint64_t offset, uint64_t claimed, pvc::Target& target,
                std::chrono::steady_clock::time_point now, std::string format_state = "");
  // Takes in the outcomes of the checkpoints on their way, waiting for
  // them: the first sync's failure, or Ok (a checkpoint that could not be
  // written turns checkpoints off).
  Status Harvest();
  // A checkpoint's thread is running.
  bool Syncing() const;
  // As many checkpoints are on their way as may be (one syncing, one
  // queued behind it): one that comes due waits for a later chunk.
  bool Queued() const;

  const ResumeSettings settings_;
  const bool checksum_;  // the import verifies a checksum
  const std::string url_;  // redacted
  const std::string target_path_;
  const std::optional<uint64_t> requested_size_;
  const bool block_;  // the target is a block device (its checkpoint in settings' checkpoint_dir)
  const std::string path_;  // the checkpoint's
  std::optional<Checkpoint> from_;
  HttpResumePoint identity_;
  bool enabled_ = true;  // false once checkpoints are off for this import
  std::string format_;  // kRawFormat, kZstdRawFormat, kXzRawFormat or kQcow2Format once known
  uint64_t resumed_at_ = 0;
  uint64_t resumed_target_ = 0;
  uint64_t last_offset_ = 0;  // the source offset the last checkpoint started claims
  uint64_t last_target_ = 0;  // and the image bytes
  uint64_t durable_offset_ = 0;  // the same, of the last checkpoint on disk
  uint64_t durable_target_ = 0;
  std::optional<formats::FrameBoundary> boundary_;  // zstd, xz: the newest point past the last checkpoint
  bool told_one_frame_ = false;  // zstd, xz: the log said checkpoints wait for a frame's end
  std::optional<formats::XzStreamStart> xz_stream_;  // xz: the stream a continued import is in
  bool told_held_ = false;       // qcow2: the log said checkpoints wait for the spool
  uint64_t qcow2_retry_at_ = 0;  // qcow2: the source offset to ask for a point again
  std::chrono::steady_clock::time_point last_time_;
  bool on_disk_ = false;  // a checkpoint of this import (or the one continued) exists
  uint64_t written_ = 0;
  std::chrono::nanoseconds spent_{0};
  std::chrono::nanoseconds background_{0};
  // Checkpoints whose threads have not ended.
  static constexpr int kMaxInFlight = 2;
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
  // The newest checkpoint on its way; its thread waits for the one before
  // and returns their outcomes folded. Declared last: its destructor waits
  // for the thread, which uses none of the members above.
  std::future<Made> pending_;
};

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_RESUME_H_
