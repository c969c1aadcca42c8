// The seams of the formats module: bytes of a container go in, guest writes come out.
//
// formats/ knows nothing of HTTP, files or devices. A stage is fed the bytes of
// its input in order, in chunks of any size (one byte at a time must work), and
// a decoder turns them into calls on a GuestWriter.
#ifndef CDI_FORMATS_DECODER_H_
#define CDI_FORMATS_DECODER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cdi/status.h"

namespace cdi::formats {

// What a decoder learned from its header, before the first write.
struct ImageDescription {
  std::string format;                    // "raw", "qcow2", ...
  std::optional<uint64_t> virtual_size;  // nullopt: a raw stream whose length shows at its end
  // Format-specific facts, in display order: {"version", "3"}, {"cluster size", "65536"}.
  std::vector<std::pair<std::string, std::string>> details;
};

// Receives the decoded image.
//
// Contract for decoders:
//  - Begin() is called exactly once, before any Write() or Zero().
//  - Together, Write() and Zero() cover every byte of [0, virtual size) exactly
//    once, in any order. Zero() means "this range reads as zero".
//  - Zero() is for what the format itself says reads as zero (unallocated or
//    zero-flagged ranges). Data goes to Write() as it is: decoders do not scan
//    it for zeros, since the writer is the one place zero blocks in data are
//    found (the importer's TargetSink).
//  - For a stream of unknown virtual size (Begin with nullopt), the virtual size
//    is the end of the last range covered.
//  - A decoder that held back the tail of a stream whose size it announced
//    may, once, after its last Write()/Zero(), lower the virtual size with
//    Shrink() when the writer CanShrink(); no range at or past the new size
//    was covered. A writer that cannot shrink (the default) gets the tail
//    covered some other way (the fixed VHD footer: zeroed).
//  - A decoder continuing an image that an earlier import decoded in part
//    (qcow2: MakeResumedQcow2Decoder) reports the ranges that import wrote
//    with Kept() instead of Write(); they count towards the cover above.
//  - All calls come from the thread that calls Feed()/Finish() on the decoder.
//  - `data` is valid only during the call.
// A non-ok Status from any method stops decoding; the decoder returns it from
// Feed()/Finish() unchanged.
class GuestWriter {
 public:
  virtual ~GuestWriter() = default;
  virtual Status Begin(const ImageDescription& image) = 0;
  virtual Status Write(uint64_t guest_offset, std::span<const uint8_t> data) = 0;
  virtual Status Zero(uint64_t guest_offset, uint64_t length) = 0;
  // Whether Shrink() may be called. The default: no.
  virtual bool CanShrink() const { return false; }
  // Lowers the virtual size given to Begin() to `virtual_size` (see above).
  virtual Status Shrink(uint64_t virtual_size) {
    return InternalError("this writer cannot shrink the image to " +
                         std::to_string(virtual_size) + " bytes");
  }
  // Guest bytes an earlier import of the same image already wrote to the
  // target (a continued import): covered, not written again. The default:
  // this writer does not continue imports.
  virtual Status Kept(uint64_t guest_offset, uint64_t length) {
    return InternalError("this writer does not continue imports (" + std::to_string(length) +
                         " bytes at guest offset " + std::to_string(guest_offset) + ")");
  }
};

// A stage of the stream: fed input bytes in order, then finished once.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Feed(std::span<const uint8_t> bytes) = 0;
  // End of input. A stream that ends early (truncated) is an error here.
  virtual Status Finish() = 0;
};

struct DecoderOptions {
  // Length of the decoder's input when known before it starts (the source's
  // Content-Length when no wrapper is around the image). Lets the decoder
  // refuse offsets past the end before the stream gets there.
  std::optional<uint64_t> container_size;
  // Memory the decoder may hold for tables, decompression and out-of-order data.
  uint64_t memory_budget = 32ull << 20;
  // Directory for spooling out-of-order data beyond memory_budget. Empty: $TMPDIR or /tmp.
  std::string scratch_dir;
  // Where the decoder's input begins in the container: 0, or, for an import
  // resumed from a checkpoint, the offset its stream continues from (raw
  // only: the input's first byte is guest byte start_offset, and
  // container_size counts the whole container).
  uint64_t start_offset = 0;
  // Worker threads for decompression; 0: one per CPU the process may use
  // (common/resources.h: its affinity mask and cgroup CPU quota).
  unsigned threads = 0;
};

// Where a later import may continue a decoder's input (Decoder::ResumePoint).
struct ResumeAt {
  uint64_t offset = 0;
  // Host ranges [start, end) before `offset`, in order, whose bytes the
  // decoder holds unmapped (they passed before any table mapped them, and a
  // table still to come may): a continued decoder is fed them again, fetched
  // at their offsets like the metadata.
  std::vector<std::pair<uint64_t, uint64_t>> held;
};

// A decoder is a sink whose output is a guest image.
class Decoder : public ByteSink {
 public:
  // Facts for `cdi-image info`, valid after Finish() (or after Begin was
  // called on the writer, for the header facts).
  virtual ImageDescription Describe() const = 0;
  // For a decoder whose input can be continued by a later import (qcow2):
  // passes on the guest writes its workers finished and returns the offset
  // of its input a later import may continue from
  // (formats/qcow2/resume_point.h): every guest write of the input before
  // it has gone to the writer (the point lies before what its workers still
  // hold), and nothing before it waits in a spool but the `held` ranges.
  // nullopt when there is none now (the default: never). Between Feed()
  // calls.
  virtual Result<std::optional<ResumeAt>> ResumePoint() { return std::optional<ResumeAt>(); }
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_DECODER_H_
