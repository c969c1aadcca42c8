// A checkpoint: what an import that may die has durably written, so that the
// next import of the same image into the same target continues from there.
//
// It lives beside the target's partial file, "<dir>/.<name>.checkpoint" (for
// a block device, in a directory of its own: ResumeSettings::checkpoint_dir),
// and is small text, one "key value" per line, versioned and sealed by the
// SHA-256 of everything before its last line:
//
//   cdi-import-checkpoint 1
//   url https://images.example.com/disk.img        (redacted: no user info, no query)
//   length 10737418240
//   etag "5f3e-6c1a"                               (empty when the server sends none)
//   last-modified Tue, 01 Dec 2026 10:00:00 GMT    (empty when the server sends none)
//   format raw                                     (or zstd+raw: a raw image in zstd frames;
//                                                   qcow2: a qcow2 image, no wrapper)
//   target /data/disk.img
//   requested-size 10737418240                     (or "none")
//   source-offset 5368709120
//   target-bytes 5368709120
//   format-state xz-check 4 stream-offset 0 stream-image-offset 0
//                                                  (only for formats that need more: xz+raw;
//                                                   qcow2 with held ranges: "held 5-9 70-80")
//   sha256 <64 hex digits>
//
// source-offset counts the bytes of the source whose effect is on the
// target, and target-bytes the partial file's bytes that hold it (the same
// for a raw image; for zstd+raw, source-offset is where a frame begins and
// target-bytes what the frames before it decompress to; for xz+raw, where a
// block begins and what the blocks before it decompress to, format-state
// naming the stream's check and start, importer/resume_xz.h; for qcow2,
// source-offset is a resume point of the decoder, formats/qcow2/resume_point.h,
// and target-bytes the partial file's size): both were
// durable (fdatasync) before the checkpoint was written, and the checkpoint
// is written atomically (a temporary file, fsync, rename), so a checkpoint
// never claims bytes that a crash lost. The directory is not synced: a rename
// that a crash loses leaves the previous checkpoint (which claims less) or
// none, both true.
//
// Thread-safety: plain functions; the target's lock (pvc/target.h) keeps
// other imports away from the files.
#ifndef CDI_IMPORTER_CHECKPOINT_H_
#define CDI_IMPORTER_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::importer {

inline constexpr int kCheckpointVersion = 1;

struct Checkpoint {
  std::string url;  // redacted
  uint64_t length = 0;
  std::string etag;
  std::string last_modified;
  std::string format = "raw";
  std::string target;
  std::optional<uint64_t> requested_size;
  uint64_t source_offset = 0;
  uint64_t target_bytes = 0;
  // What the format needs besides the offsets to continue ("" for raw and
  // zstd+raw): written only when not empty.
  std::string format_state;
};

// "<dir>/.<name>.checkpoint" for the target "<dir>/<name>"; with
// `checkpoint_dir` (a block device's, ResumeSettings::checkpoint_dir),
// "<checkpoint_dir>/.<name>.checkpoint".
std::string CheckpointPath(const std::string& target_path, const std::string& checkpoint_dir = "");
// "<dir>/.<name>.partial", where a file target is written until it is complete.
std::string PartialPath(const std::string& target_path);

// A decimal number as a checkpoint writes one (the whole of `text`);
// nullopt when it is not one.
std::optional<uint64_t> ParseDecimal(std::string_view text);

// The checkpoint's text. kInvalidArgument when a value holds a line break.
Result<std::string> EncodeCheckpoint(const Checkpoint& checkpoint);
// Parses and checks a checkpoint's text: kCorruptImage saying what is wrong
// (another version, a line missing or repeated, a number that is not one, a
// seal that does not match: truncated or edited).
Result<Checkpoint> DecodeCheckpoint(std::string_view text);

// Writes `checkpoint` to `path` atomically and durably.
Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads the checkpoint at `path`: nullopt when there is none; kCorruptImage
// as DecodeCheckpoint, kIo when it cannot be read.
Result<std::optional<Checkpoint>> ReadCheckpoint(const std::string& path);
// Removes the checkpoint at `path` (and a temporary one beside it), if any.
void RemoveCheckpoint(const std::string& path);

// Why `saved` cannot continue the import `wanted` describes (url, target,
// requested size; a format that is not continued): "" when it can.
std::string CheckpointMismatch(const Checkpoint& saved, const Checkpoint& wanted);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_CHECKPOINT_H_
