// Detection, unwrapping and decoding chained together: the whole format side
// of an import as one ByteSink.
//
//   container bytes -> detect -> [gzip|xz|zstd -> detect]* -> decoder -> GuestWriter
//
// Each wrapper kind is unwrapped at most once. Formats are recognised by their
// bytes, never by a file name (formats/detect.h); each detection stage holds
// back at most kDetectBytes (32 KiB) until it has decided.
//
// Stages: gzip, xz and zstd get an unwrapper (formats/unwrapper.h) whose output
// is detected again; raw gets the raw decoder (formats/raw_decoder.h) behind
// the fixed-VHD footer check (formats/vhd/fixed_footer.h); qcow2 gets
// MakeQcow2Decoder(); vdi MakeVdiDecoder(), vhd MakeVhdDecoder(), vhdx
// MakeVhdxDecoder(), vmdk MakeVmdkDecoder(); a tar (an OVA) MakeOvaDecoder(),
// which runs a pipeline of its own over the disk entry
// (formats/ova/ova_decoder.h). DecoderOptions::container_size reaches the
// decoder only when no wrapper is around the image.
//
// Archive content (the constructor taking a tar::EntryWriter): wrappers are
// unwrapped the same way, and whatever is not a wrapper is read by the tar
// reader (formats/tar/tar_reader.h), whatever its magic; the chain ends in
// "tar" and no decoder is built. Its errors are the tar reader's.
//
// Errors (all returned from Feed()/Finish(); the first one is returned again by
// every later call):
//  - kUnsupported: a second layer of the same wrapper, an xz stream needing
//    more than xz_memlimit, a zstd frame with a window past zstd_window_log_max;
//    from the decoders, what they do not read (qcow2 backing files, differencing
//    VHDs, ...: see their headers).
//  - kCorruptImage, kTooSmall: from the unwrappers and decoders, see their headers.
//  - A non-ok Status from the GuestWriter is returned unchanged.
//  - kInternal: fed after Finish(), or finished twice.
//
// Memory: kDetectBytes per detection stage until it decides, 1 MiB per
// unwrapper plus its decompressor (bounded by xz_memlimit and
// 2^zstd_window_log_max), plus the decoder's DecoderOptions::memory_budget.
// None of it grows with the image. Large chunks pass through detection and the
// raw decoder without being copied (but for the last 512 bytes of a raw stream,
// held back until its end to see whether they are a fixed VHD footer).
//
// Thread-safety: none; one thread feeds the pipeline, and the GuestWriter is
// called on that thread. The xz unwrapper may decode on DecoderOptions::threads
// worker threads of its own.
#ifndef CDI_FORMATS_PIPELINE_H_
#define CDI_FORMATS_PIPELINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/decoder.h"
#include "formats/unwrapper.h"

namespace cdi::formats {

namespace tar {
class EntryWriter;
}  // namespace tar
struct Qcow2Resume;  // formats/qcow2/resume_point.h

// A point between two frames of an outermost zstd layer, or between two
// blocks of an outermost xz layer: the compressed bytes before it (the
// source's) and the bytes they decompress to.
struct FrameBoundary {
  uint64_t compressed = 0;
  uint64_t decompressed = 0;
  // xz: the stream the point lies in (its check, where it began), which a
  // later import needs to continue there (formats/xz_blocks.h).
  std::optional<XzStreamStart> xz_stream;
};

struct PipelineOptions {
  DecoderOptions decoder;
  // No unwrapper may produce more than this many bytes; passing it is a
  // kTooSmall error raised as soon as it happens, before any byte past it
  // reaches the next stage. Each wrapper layer is counted on its own.
  uint64_t max_unwrapped_bytes = UINT64_MAX;
  // liblzma's memory limit (bytes) for an xz stream, worker threads included.
  uint64_t xz_memlimit = 128ull << 20;
  // What the xz decoder's threads may hold together (UnwrapOptions); 0: xz_memlimit.
  uint64_t xz_memlimit_threading = 0;
  // zstd frames with a larger window are refused.
  int zstd_window_log_max = 27;
  // Set for the pipeline an OVA runs over its disk entry: a tar there is
  // refused (kUnsupported) rather than opened as an OVA again, so that
  // nesting stays one level deep whatever the input.
  bool inside_ova = false;
  // The input is a disk's bytes as they are (a block device's clone): no
  // wrapper or format is looked for, a qcow2 header inside stays data.
  bool raw_only = false;
  // Continues a raw image (no wrapper) that an earlier import wrote up to
  // this offset (a checkpoint's): nothing is detected, the chain is {"raw"}
  // and the input's first byte is guest byte *resume_raw_at. The fixed-VHD
  // footer check still runs at the end. decoder.container_size, when set, is
  // the whole image's length.
  std::optional<uint64_t> resume_raw_at;
  // Continues a raw image inside zstd (the chain {"zstd", "raw"}) at a point
  // between frames that an earlier import reached (a checkpoint's): the
  // input's first byte is compressed byte resume_zstd_at->compressed of the
  // source, where a frame or the zero padding after the last one begins,
  // and what follows decompresses to guest bytes from
  // resume_zstd_at->decompressed on. Nothing is detected.
  std::optional<FrameBoundary> resume_zstd_at;
  // Continues a qcow2 image (no wrapper; the chain {"qcow2"}) at a resume
  // point an earlier import reached (a checkpoint's): the input's first byte
  // is the image's byte resume_qcow2->at, and the decoder is primed with the
  // metadata before it (qcow2/resume_point.h). Nothing is detected.
  // decoder.container_size is the whole image's length.
  std::shared_ptr<const Qcow2Resume> resume_qcow2;
  // Continues a raw image inside xz (the chain {"xz", "raw"}) at a point
  // between blocks that an earlier import reached (a checkpoint's, with its
  // xz_stream): the input's first byte is compressed byte
  // resume_xz_at->compressed of the source, where a Block Header or the Index
  // begins, and what follows decompresses to guest bytes from
  // resume_xz_at->decompressed on. Nothing is detected; the stream's Index
  // must agree with the point (formats/xz_blocks.h).
  std::optional<FrameBoundary> resume_xz_at;
  // Keeps the points between frames of an outermost zstd layer, or between
  // blocks of an outermost xz layer, around a raw image for
  // TakeFrameBoundary (an import that writes checkpoints); a few bytes each
  // until taken.
  bool frame_boundaries = false;
  // Archives only: the tar is a container image layer, whose links, devices
  // and other entries are reported as tar::EntryType::kOther instead of
  // refused (tar::OtherEntries::kReport).
  bool container_layer = false;
};

class ImagePipeline : public ByteSink {
 public:
  // A disk image, decoded into `writer`, which must outlive the pipeline.
  ImagePipeline(GuestWriter* writer, PipelineOptions options);
  // A tar archive, whose entries go to `writer`, which must outlive the
  // pipeline. options.decoder is not used.
  ImagePipeline(tar::EntryWriter* writer, PipelineOptions options);
  ~ImagePipeline() override;

  Status Feed(std::span<const uint8_t> bytes) override;
  Status Finish() override;

  // Layers detected so far, outermost first, with lower-case names:
  // {"gzip", "qcow2"}, {"zstd", "tar"}, {"ova", "vmdk"}. A refused layer is listed too:
  // {"gzip", "vmdk"}. The last name is the decoder's once it exists: a raw
  // stream found at its end to be a fixed VHD reads {"vhd"} after Finish().
  std::vector<std::string> format_chain() const;
  // The decoder's description once it exists (nullopt before detection
  // decided, and when no decoder was built, as for a refused format).
  std::optional<ImageDescription> Describe() const;
  // The size of a raw image inside zstd, as the zstd frame header declares
  // it (ZstdDeclaredFrameSize); nullopt for every other chain, and when the
  // header does not say.
  std::optional<uint64_t> DeclaredRawSize() const;
  // For a raw image inside an outermost zstd or xz layer (the chains
  // {"zstd", "raw"} and {"xz", "raw"}): the last point between frames (xz:
  // blocks) whose decompressed bytes all lie among the image's first
  // `covered` bytes, when the stream passed one since the last call (earlier
  // ones are forgotten); nullopt otherwise, for every other chain, and
  // without PipelineOptions::frame_boundaries. Its offsets count from the
  // stream's start, a continued one's too. An image compressed as one frame
  // (one xz block) has none before its end.
  std::optional<FrameBoundary> TakeFrameBoundary(uint64_t covered);
  // For a qcow2 image with no wrapper (the chain {"qcow2"}): the source
  // offset a later import may continue from (Decoder::ResumePoint: it
  // waits for the decoder's workers first); nullopt for every other chain
  // and when there is none now.
  Result<std::optional<ResumeAt>> Qcow2ResumePoint();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_PIPELINE_H_
