#include "importer/resume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <span>
#include <vector>

#include "common/log.h"
#include "common/posix_error.h"
#include "common/text.h"
#include "common/unique_fd.h"
#include "importer/resume_xz.h"
#include "importer/qcow2_resume.h"
#include "pvc/target.h"

namespace cdi::importer {
namespace {

using Clock = std::chrono::steady_clock;

bool IsHttpUrl(const std::string& url) {
  const std::string lower = AsciiLower(url.substr(0, 8));
  return lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0;
}

bool IsStrongEtag(const std::string& etag) { return !etag.empty() && etag.rfind("W/", 0) != 0; }

// The compression around a raw image ("zstd", "xz"), for messages.
std::string WrapperOf(std::string_view format) {
  return std::string(format.substr(0, format.find('+')));
}

// Where a compressed format is continued, for messages.
std::string PointOf(std::string_view format) {
  return format == kXzRawFormat ? "an xz block" : "a zstd frame";
}

bool IsBlockTarget(const TargetSpec& target) {
  return target.kind == TargetKind::kBlockDevice || pvc::IsBlockDevice(target.path);
}

// The debug line for a checkpoint on disk, on its thread.
void LogWritten(const std::string& format, const Checkpoint& checkpoint,
                std::chrono::steady_clock::duration took) {
  const double ms = std::chrono::duration<double, std::milli>(took).count();
  if (format == kRawFormat) {
    Logger()->debug("Checkpoint: the first {} of {} bytes are on the target ({:.1f} ms)",
                    checkpoint.source_offset, checkpoint.length, ms);
  } else if (format == kQcow2Format) {
    Logger()->debug(
        "Checkpoint: the qcow2 image's first {} of {} bytes are decoded onto the target "
        "({:.1f} ms)",
        checkpoint.source_offset, checkpoint.length, ms);
  } else {
    Logger()->debug(
        "Checkpoint: the first {} of {} bytes of the source ({} bytes of the image) are on "
        "the target ({:.1f} ms)",
        checkpoint.source_offset, checkpoint.length, checkpoint.target_bytes, ms);
  }
}

}  // namespace

std::string WhyNoCheckpoints(const ImportSpec& spec, bool source_given) {
  if (spec.content_type == ContentType::kArchive) {
    return "archive content is extracted into a directory, which is not continued";
  }
  if (source_given) return "the source is a stream handed to the import";
  if (spec.targets.size() != 1) return "an import into several targets is not continued";
  if (!IsHttpUrl(spec.source.url)) return "only imports from http(s) URLs are continued";
  const TargetSpec& target = spec.targets.front();
  if (IsBlockTarget(target) && spec.resume.checkpoint_dir.empty()) {
    return target.path +
           " is a block device, which has no room for a checkpoint beside it, and no "
           "directory for its checkpoint was given (--checkpoint-dir; an importer pod uses its "
           "scratch volume when it has one)";
  }
  return "";
}

Resumer::Resumer(const ImportSpec& spec)
    : settings_(spec.resume),
      checksum_(!spec.checksum.empty()),
      url_(RedactUrl(spec.source.url)),
      target_path_(spec.targets.front().path),
      requested_size_(spec.targets.front().requested_size),
      block_(IsBlockTarget(spec.targets.front())),
      path_(CheckpointPath(target_path_, block_ ? spec.resume.checkpoint_dir : "")) {}

Checkpoint Resumer::Wanted() const {
  Checkpoint wanted;
  wanted.url = url_;
  wanted.format = format_.empty() ? std::string(kRawFormat) : format_;
  wanted.target = target_path_;
  wanted.requested_size = requested_size_;
  return wanted;
}

Result<std::optional<Checkpoint>> Resumer::Prepare(pvc::Target& target) {
  // A block device holds what an earlier import left whatever happened; an
  // import that starts over writes every byte of it again.
  const uint64_t partial = block_ ? 0 : target.size();
  auto start_over = [&](const std::string& why) -> Result<std::optional<Checkpoint>> {
    Logger()->info("Importing {} from byte 0: {}", target_path_, why);
    RemoveCheckpoint(path_);
    if (partial > 0) CDI_RETURN_IF_ERROR(target.SetSize(0));
    return std::optional<Checkpoint>();
  };
  Result<std::optional<Checkpoint>> read = ReadCheckpoint(path_);
  if (!read.ok()) {
    return start_over("the checkpoint " + path_ + " cannot be used: " + read.status().message());
  }
  if (!read->has_value()) {
    if (partial == 0) return std::optional<Checkpoint>();
    return start_over(PartialPath(target_path_) + " was left by an earlier import without a " +
                      "checkpoint");
  }
  const Checkpoint& saved = **read;
  const std::string mismatch = CheckpointMismatch(saved, Wanted());
  if (!mismatch.empty()) {
    return start_over("the checkpoint " + path_ + " does not match this import: " + mismatch);
  }
  if (saved.format == kQcow2Format && checksum_) {
    return start_over("the checkpoint " + path_ +
                      " is for a qcow2 image, and the checksum "
                      "asked for covers the qcow2 file as served, which the target does not "
                      "hold (it holds the decoded disk)");
  }
  if (saved.format != kRawFormat && checksum_) {
    return start_over("the checkpoint " + path_ + " is for a " + saved.format +
                      " image, and the checksum asked for covers its compressed bytes as "
                      "served, which the target does not hold");
  }
  if (saved.format == kXzRawFormat) {
    Result<formats::XzStreamStart> stream =
        DecodeXzState(saved.format_state, saved.source_offset, saved.target_bytes);
    if (!stream.ok()) {
      return start_over("the checkpoint " + path_ + " cannot be used: " +
                        stream.status().message());
    }
    xz_stream_ = *stream;
  }
  if (target.size() < saved.target_bytes) {
    return start_over((block_ ? target_path_ : PartialPath(target_path_)) + " holds " +
                      std::to_string(target.size()) + " bytes, fewer than the " +
                      std::to_string(saved.target_bytes) + " its checkpoint claims");
  }
  if (!block_) CDI_RETURN_IF_ERROR(target.SetSize(saved.target_bytes));
  from_ = saved;
  on_disk_ = true;
  if (saved.format == kQcow2Format) {
    Logger()->info(
        "Found a checkpoint of an earlier import of {} into {}: the qcow2 image's first {} "
        "of {} bytes are decoded onto the target; fetching its tables again and asking the "
        "server for the rest",
        saved.url, target_path_, saved.source_offset, saved.length);
  } else if (saved.format == kRawFormat) {
    Logger()->info(
        "Found a checkpoint of an earlier import of {} into {}: its first {} of {} "
        "bytes are on the target; asking the server for the rest",
        saved.url, target_path_, saved.source_offset, saved.length);
  } else {
    Logger()->info(
        "Found a checkpoint of an earlier import of {} into {}: its first {} of {} "
        "bytes ({} bytes of the {} image) are on the target; asking the server for the "
        "rest, from the start of {}",
        saved.url, target_path_, saved.source_offset, saved.length, saved.target_bytes,
        saved.format, PointOf(saved.format));
  }
  return from_;
}

Status Resumer::SourceOpened(const HttpResumePoint& served, pvc::Target& target) {
  identity_ = served;
  if (from_) {
    if (served.offset == from_->source_offset) {
      resumed_at_ = last_offset_ = durable_offset_ = served.offset;
      resumed_target_ = last_target_ = durable_target_ = from_->target_bytes;
      format_ = from_->format;
      if (format_ == kQcow2Format) resumed_target_ = 0;  // the decoder reports what is there
    } else {
      Logger()->info(
          "Importing {} from byte 0: the server sent the whole image, not the rest "
          "of the one the checkpoint names",
          target_path_);
      from_.reset();
      xz_stream_.reset();
      RemoveCheckpoint(path_);
      on_disk_ = false;
      if (!block_) CDI_RETURN_IF_ERROR(target.SetSize(0));
    }
  }
  last_time_ = Clock::now();
  if (!identity_.length) {
    enabled_ = false;
    Logger()->info("No checkpoints: the server does not say how long the image is");
  } else if (!IsStrongEtag(identity_.etag) && identity_.last_modified.empty()) {
    enabled_ = false;
    Logger()->info(
        "No checkpoints: the server names the image by neither a strong ETag nor a "
        "Last-Modified date, so a later import could not tell it is the same image");
  }
  return Status::Ok();
}

Status Resumer::Rehash(Checksum& checksum) const {
  if (resumed_at_ == 0) return Status::Ok();
  if (format_ != kRawFormat) {
    return InternalError("the checksum of a " + format_ + " image cannot be continued");
  }
  const std::string partial = block_ ? target_path_ : PartialPath(target_path_);
  Logger()->info("Checksum: digesting the {} bytes already on the target", resumed_at_);
  UniqueFd fd(open(partial.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError(errno, "opening " + partial, PathUse::kRead);
  std::vector<uint8_t> buffer(kMiB);
  for (uint64_t at = 0; at < resumed_at_;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), resumed_at_ - at));
    ssize_t n = pread(fd.get(), buffer.data(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, "reading " + partial, PathUse::kRead);
    if (n == 0) {
      return IoError(partial + " ends at byte " + std::to_string(at) + ", before the " +
                     std::to_string(resumed_at_) + " bytes its checkpoint claims");
    }
    checksum.Update(std::span(buffer.data(), static_cast<size_t>(n)));
    at += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

bool Resumer::SettleFormat(const std::vector<std::string>& chain) {
  if (!format_.empty()) return true;
  std::string text;
  for (const std::string& layer : chain) text += (text.empty() ? "" : "+") + layer;
  if (text == kQcow2Format) {
    if (checksum_) {
      enabled_ = false;
      Logger()->info(
          "No checkpoints: the checksum covers the qcow2 file as served, which the target "
          "does not hold (it holds the decoded disk), so an import of it with a checksum is "
          "not continued");
      return false;
    }
    format_ = text;
    return true;
  }
  if (text != kRawFormat && text != kZstdRawFormat && text != kXzRawFormat) {
    enabled_ = false;
    Logger()->info(
        "No checkpoints: only raw images (bare or compressed with zstd or xz) and qcow2 images "
        "are continued, and this one is {}",
        text);
    return false;
  }
  if (text != kRawFormat && checksum_) {
    enabled_ = false;
    Logger()->info(
        "No checkpoints: the checksum covers the {} image's compressed bytes as served, "
        "which the target does not hold, so an import of it with a checksum is not continued",
        WrapperOf(text));
    return false;
  }
  format_ = text;
  return true;
}

Status Resumer::AfterFeed(const Reached& reached, pvc::Target& target) {
  if (!enabled_ || reached.chain.empty() || !SettleFormat(reached.chain)) return Status::Ok();
  if (format_ == kQcow2Format) return AfterFeedQcow2(reached, target);
  const bool raw = format_ == kRawFormat;
  const uint64_t length = *identity_.length;
  // The point a checkpoint would claim now: the source offset a later
  // import continues at, and the image bytes before it.
  uint64_t offset = 0;
  uint64_t claimed = 0;
  if (raw) {
    offset = claimed = reached.covered / kCheckpointAlignment * kCheckpointAlignment;
    if (offset <= last_offset_) return Status::Ok();
  } else {
    if (reached.frame_boundary) boundary_ = reached.frame_boundary;
    if (boundary_) {
      offset = boundary_->compressed;
      claimed = boundary_->decompressed;
    }
  }
  const Clock::time_point now = Clock::now();
  const uint64_t progressed = (raw ? offset : reached.source_offset) - last_offset_;
  const bool due =
      (settings_.checkpoint_bytes > 0 && progressed >= settings_.checkpoint_bytes) ||
      (settings_.checkpoint_interval.count() > 0 &&
       now - last_time_ >= settings_.checkpoint_interval);
  if (!due || Queued()) return Status::Ok();
  // A point at the very end is not one to continue from: nothing follows.
  if (offset >= length) return Status::Ok();
  if (offset <= last_offset_) {
    if (!raw && !told_one_frame_ && format_ == kXzRawFormat) {
      told_one_frame_ = true;
      Logger()->info(
          "No checkpoint yet: no xz block ended since byte {} of the source; checkpoints "
          "are taken between blocks, so an image compressed as one block gets none before "
          "its end (compressed in several blocks, as 'xz -T0' or 'xz --block-size' write it, "
          "it gets them on the way)",
          last_offset_);
    } else if (!raw && !told_one_frame_) {
      told_one_frame_ = true;
      Logger()->info(
          "No checkpoint yet: no zstd frame ended since byte {} of the source; checkpoints "
          "are taken between frames, so an image compressed as one frame gets none before "
          "its end (compressed in several frames, as pzstd writes it, it gets them on the way)",
          last_offset_);
    }
    return Status::Ok();
  }
  // A stream of unknown size ends in zeros that are not on the target yet:
  // the file covers them before the checkpoint claims them.
  if (target.size() < claimed) CDI_RETURN_IF_ERROR(target.SetSize(claimed));
  return Commit(offset, claimed, target, now);
}

Status Resumer::AfterFeedQcow2(const Reached& reached, pvc::Target& target) {
  const Clock::time_point now = Clock::now();
  const bool due = (settings_.checkpoint_bytes > 0 &&
                    reached.source_offset - last_offset_ >= settings_.checkpoint_bytes) ||
                   (settings_.checkpoint_interval.count() > 0 &&
                    now - last_time_ >= settings_.checkpoint_interval);
  if (!due || !reached.qcow2_point || reached.source_offset < qcow2_retry_at_ || Queued()) {
    return Status::Ok();
  }
  CDI_ASSIGN_OR_RETURN(std::optional<formats::ResumeAt> point, reached.qcow2_point());
  if (!point || point->offset <= last_offset_ || point->offset >= *identity_.length) {
    // Asking waits for the decoder's workers: not again at once, but soon
    // (a point is mostly held back by a few compressed clusters in flight).
    qcow2_retry_at_ =
        reached.source_offset + std::max<uint64_t>(settings_.checkpoint_bytes / 16, 256 * kKiB);
    spent_ += Clock::now() - now;  // asking costs the import too
    if (!told_held_) {
      told_held_ = true;
      Logger()->info(
          "No checkpoint yet: the qcow2 decoder holds more bytes since byte {} of the source "
          "than a checkpoint carries, which a table still to come may map (or the source "
          "offset it stands at is no later than the last checkpoint's); checkpoints follow "
          "once they are written",
          last_offset_);
    }
    return Status::Ok();
  }
  // The partial file as it is: the guest writes of the bytes before the
  // point, and some after it, which the next import writes again; and the
  // ranges the decoder holds unmapped before it, which the next import
  // fetches again.
  return Commit(point->offset, target.size(), target, now, EncodeQcow2Held(point->held));
}

Status Resumer::Commit(uint64_t offset, uint64_t claimed, pvc::Target& target,
                       Clock::time_point now, std::string format_state) {
  // The outcome of the last checkpoint, when its thread is done.
  if (pending_.valid() && !Syncing()) CDI_RETURN_IF_ERROR(Harvest());
  if (!enabled_) return Status::Ok();
  Checkpoint checkpoint = Wanted();
  checkpoint.length = *identity_.length;
  checkpoint.etag = identity_.etag;
  checkpoint.last_modified = identity_.last_modified;
  checkpoint.source_offset = offset;
  checkpoint.target_bytes = claimed;
  checkpoint.format_state = std::move(format_state);
  if (format_ == kXzRawFormat) {
    // The stream's check and start, which the next import needs to go on.
    if (!boundary_ || !boundary_->xz_stream) return Status::Ok();
    checkpoint.format_state = EncodeXzState(*boundary_->xz_stream);
  }
  // Every byte the checkpoint claims is handed to the target now; a thread
  // of its own waits until they are on it, makes them durable (fdatasync)
  // and only then writes the checkpoint, while the import goes on. A
  // checkpoint that comes while the last one is on its way queues behind
  // it (its thread waits for the last one's): checkpoints go to disk in
  // order, and none follows a failed one.
  CDI_ASSIGN_OR_RETURN(pvc::PendingSync sync, target.StartSync());
  in_flight_->fetch_add(1);
  pending_ = std::async(
      std::launch::async,
      [earlier = std::move(pending_), sync = std::move(sync), checkpoint = std::move(checkpoint),
       path = path_, target_path = target_path_, format = format_,
       in_flight = in_flight_]() mutable {
        // The outcome so far, folded into one: the queue's memory stays
        // the same however many checkpoints pass before a Harvest.
        Made made;
        if (earlier.valid()) made = earlier.get();
        if (made.synced.ok() && made.written.ok()) {
          const Clock::time_point began = Clock::now();
          made.synced = sync.written();
          if (made.synced.ok() && fdatasync(sync.fd.get()) != 0) {
            made.synced = PosixError(errno, "flushing " + target_path + " to disk");
          }
          if (made.synced.ok()) made.written = WriteCheckpoint(path, checkpoint);
          const Clock::duration took = Clock::now() - began;
          made.took += took;
          if (made.synced.ok() && made.written.ok()) {
            ++made.count;
            made.source_offset = checkpoint.source_offset;
            made.target_bytes = checkpoint.target_bytes;
            LogWritten(format, checkpoint, took);
          }
        }
        in_flight->fetch_sub(1);
        return made;
      });
  last_offset_ = offset;
  last_target_ = claimed;
  boundary_.reset();
  last_time_ = Clock::now();
  spent_ += last_time_ - now;
  return Status::Ok();
}

Status Resumer::Harvest() {
  if (!pending_.valid()) return Status::Ok();
  const Made made = pending_.get();
  background_ += made.took;
  if (made.count > 0) {
    on_disk_ = true;
    durable_offset_ = made.source_offset;
    durable_target_ = made.target_bytes;
    written_ += made.count;
  }
  // A sync that failed may have lost writes the kernel will not retry: the
  // import fails (and its partial file goes, Failed).
  if (!made.synced.ok()) return made.synced;
  if (!made.written.ok()) {
    Logger()->warn("{}; no more checkpoints for this import", made.written.message());
    enabled_ = false;
    RemoveCheckpoint(path_);
    on_disk_ = false;
  }
  return Status::Ok();
}

bool Resumer::Syncing() const { return in_flight_->load() > 0; }

bool Resumer::Queued() const { return in_flight_->load() >= kMaxInFlight; }

Status Resumer::Drain() {
  if (pending_.valid()) pending_.wait();
  return Harvest();
}

Status Resumer::StartOver(pvc::Target& target, const std::string& why) {
  Logger()->info("Importing {} from byte 0: {}", target_path_, why);
  from_.reset();
  RemoveCheckpoint(path_);
  on_disk_ = false;
  return block_ ? Status::Ok() : target.SetSize(0);
}

void Resumer::Finished() {
  Status drained = Drain();
  if (!drained.ok()) Logger()->warn("{}", drained.message());
  RemoveCheckpoint(path_);
  if (written_ > 0) {
    Logger()->info(
        "{} checkpoints written in {:.3f} s of the import's time ({:.3f} s syncing alongside it)",
        written_, std::chrono::duration<double>(spent_).count(),
        std::chrono::duration<double>(background_).count());
  }
}

bool Resumer::Failed(const Status& status) {
  // A checkpoint on its way is either on disk before the target is kept or
  // abandoned, or it claims nothing.
  Status drained = Drain();
  if (!drained.ok()) Logger()->warn("{}", drained.message());
  const bool resumable = status.code() == ErrorCode::kCancelled ||
                         (status.code() == ErrorCode::kNetwork && status.retryable());
  if (on_disk_ && resumable && drained.ok()) {
    if (format_ != kRawFormat) {
      Logger()->info(
          "Kept the partial image and its checkpoint at byte {} of the source (byte {} of the "
          "image): importing again continues from there",
          durable_offset_, durable_target_);
    } else {
      Logger()->info(
          "Kept the partial image and its checkpoint at byte {}: importing again "
          "continues from there",
          durable_offset_);
    }
    return true;
  }
  RemoveCheckpoint(path_);
  return false;
}

}  // namespace cdi::importer

namespace cdi {

bool KeptForResume(const std::string& target_path, const std::string& checkpoint_dir) {
  const bool block = pvc::IsBlockDevice(target_path);
  if (block && checkpoint_dir.empty()) return false;
  Result<std::optional<importer::Checkpoint>> read = importer::ReadCheckpoint(
      importer::CheckpointPath(target_path, block ? checkpoint_dir : ""));
  struct stat partial {};
  return read.ok() && read->has_value() &&
         (block || stat(importer::PartialPath(target_path).c_str(), &partial) == 0);
}

}  // namespace cdi
