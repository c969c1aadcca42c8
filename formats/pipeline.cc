#include "formats/pipeline.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "formats/detect.h"
#include "formats/foreign.h"
#include "formats/ova/ova_decoder.h"
#include "formats/qcow2/qcow2_decoder.h"
#include "formats/raw_decoder.h"
#include "formats/tar/tar_reader.h"
#include "formats/unwrapper.h"
#include "formats/vdi/vdi_decoder.h"
#include "formats/vhd/fixed_footer.h"
#include "formats/vhd/vhd_decoder.h"
#include "formats/vhdx/vhdx_decoder.h"
#include "formats/vmdk/vmdk_decoder.h"

namespace cdi::formats {
namespace {

// Where a detection stage sits: only the outermost layer's length is known
// from the source (its Content-Length); what a wrapper yields has no length
// until it ends.
enum class Layer { kOutermost, kInsideWrapper };

std::string NestedWrapperMessage(Format wrapper) {
  std::string name(FormatName(wrapper));
  return "the image is compressed with " + name + " twice (" + name + " inside " + name +
         "); only one layer of each compression is unwrapped: decompress it once ('" + name +
         " -d') and import the result";
}

}  // namespace

class ImagePipeline::Impl {
 public:
  Impl(GuestWriter* writer, PipelineOptions options)
      : writer_(writer), options_(std::move(options)), root_(this, Layer::kOutermost) {}
  Impl(tar::EntryWriter* archive_writer, PipelineOptions options)
      : archive_writer_(archive_writer),
        options_(std::move(options)),
        root_(this, Layer::kOutermost) {}

  Status Feed(std::span<const uint8_t> bytes) {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the image pipeline was fed after Finish()");
    status_ = root_.Feed(bytes);
    return status_;
  }

  Status Finish() {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the image pipeline was finished twice");
    finished_ = true;
    status_ = root_.Finish();
    return status_;
  }

  std::vector<std::string> format_chain() const {
    std::vector<std::string> names;
    for (Format format : chain_) names.emplace_back(FormatName(format));
    // What the decoder found may go past detection: a raw stream that ends in
    // a fixed VHD footer is a vhd.
    if (decoder_ != nullptr && !names.empty()) {
      const std::string format = decoder_->Describe().format;
      if (ova_ && format != "ova") {
        names.back() = "ova";  // an OVA's disk: {"ova", "vmdk"}
        names.push_back(format);
      } else {
        names.back() = format;
      }
    }
    if (tar_built_) names.emplace_back("tar");
    return names;
  }

  std::optional<ImageDescription> Describe() const {
    if (decoder_ == nullptr) return std::nullopt;
    return decoder_->Describe();
  }

  std::optional<uint64_t> DeclaredRawSize() const {
    if (chain_ != std::vector<Format>{Format::kZstd, Format::kRaw}) return std::nullopt;
    return zstd_declared_size_;
  }

  Result<std::optional<ResumeAt>> Qcow2ResumePoint() {
    if (ova_ || decoder_ == nullptr || chain_ != std::vector<Format>{Format::kQcow2}) {
      return std::optional<ResumeAt>();
    }
    return decoder_->ResumePoint();
  }

  std::optional<FrameBoundary> TakeFrameBoundary(uint64_t covered) {
    if (!RawInZstd() && !RawInXz()) return std::nullopt;
    std::optional<FrameBoundary> found;
    while (!frame_ends_.empty() && frame_ends_.front().decompressed <= covered) {
      found = frame_ends_.front();
      frame_ends_.pop_front();
    }
    return found;
  }

 private:
  // Holds back the first kDetectBytes of its input (or all of it, when the
  // input is shorter), detects the format, has the next stage built, then
  // hands everything to that stage. After detection it only forwards.
  class DetectStage final : public ByteSink {
   public:
    DetectStage(Impl* pipeline, Layer layer) : pipeline_(pipeline), layer_(layer) {}

    Status Feed(std::span<const uint8_t> bytes) override {
      if (next_ != nullptr) return next_->Feed(bytes);
      if (head_.empty() && bytes.size() >= kDetectBytes) {
        // The common case, a large first chunk: detect in place, copy nothing.
        CDI_RETURN_IF_ERROR(Start(bytes));
        return next_->Feed(bytes);
      }
      size_t take = std::min(kDetectBytes - head_.size(), bytes.size());
      head_.insert(head_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
      if (head_.size() < kDetectBytes) return Status::Ok();
      CDI_RETURN_IF_ERROR(StartWithHead());
      bytes = bytes.subspan(take);
      if (bytes.empty()) return Status::Ok();
      return next_->Feed(bytes);
    }

    Status Finish() override {
      // A stream shorter than kDetectBytes is detected on what there is.
      if (next_ == nullptr) CDI_RETURN_IF_ERROR(StartWithHead());
      return next_->Finish();
    }

   private:
    Status Start(std::span<const uint8_t> head) {
      CDI_ASSIGN_OR_RETURN(next_, pipeline_->BuildStage(head, layer_));
      return Status::Ok();
    }

    Status StartWithHead() {
      CDI_RETURN_IF_ERROR(Start(head_));
      std::vector<uint8_t> head = std::move(head_);
      head_ = {};
      if (head.empty()) return Status::Ok();
      return next_->Feed(head);
    }

    Impl* pipeline_;
    Layer layer_;
    std::vector<uint8_t> head_;  // input held back until detection
    ByteSink* next_ = nullptr;   // owned by the pipeline
  };

  // Detects `head` and builds the stage that consumes the layer: an unwrapper
  // feeding a new detection stage, or a decoder feeding the writer (the tar
  // reader, for archives).
  Result<ByteSink*> BuildStage(std::span<const uint8_t> head, Layer layer) {
    if (options_.resume_raw_at && archive_writer_ == nullptr) {
      chain_.push_back(Format::kRaw);
      DecoderOptions resumed = options_.decoder;
      resumed.start_offset = *options_.resume_raw_at;
      std::unique_ptr<Decoder> raw = MakeRawOrFixedVhdDecoder(writer_, resumed);
      decoder_ = raw.get();
      stages_.push_back(std::move(raw));
      return stages_.back().get();
    }
    if (options_.resume_zstd_at && archive_writer_ == nullptr) return BuildResumedZstd();
    if (options_.resume_xz_at && archive_writer_ == nullptr) return BuildResumedXz();
    if (options_.resume_qcow2 && archive_writer_ == nullptr) {
      // A qcow2 image continued at a resume point (qcow2/resume_point.h).
      chain_.push_back(Format::kQcow2);
      std::unique_ptr<Decoder> qcow2 =
          MakeResumedQcow2Decoder(writer_, options_.decoder, *options_.resume_qcow2);
      decoder_ = qcow2.get();
      stages_.push_back(std::move(qcow2));
      return stages_.back().get();
    }
    if (options_.raw_only && archive_writer_ == nullptr) {
      chain_.push_back(Format::kRaw);
      std::unique_ptr<Decoder> raw = MakeRawDecoder(writer_, options_.decoder);
      decoder_ = raw.get();
      stages_.push_back(std::move(raw));
      return stages_.back().get();
    }
    Format format = Detect(head);
    if (archive_writer_ != nullptr && !IsWrapper(format)) {
      // A tar header has no magic at offset 0; the tar reader checks it.
      tar_built_ = true;
      stages_.push_back(tar::MakeTarReader(archive_writer_, options_.container_layer
                                                                ? tar::OtherEntries::kReport
                                                                : tar::OtherEntries::kRefuse));
      return stages_.back().get();
    }
    bool nested = std::find(chain_.begin(), chain_.end(), format) != chain_.end();
    chain_.push_back(format);
    if (IsWrapper(format)) {
      if (nested) return UnsupportedError(NestedWrapperMessage(format));
      if (format == Format::kZstd && chain_.size() == 1) {
        zstd_declared_size_ = ZstdDeclaredFrameSize(head);
      }
      UnwrapOptions unwrap = UnwrapOptionsFor();
      if (format == Format::kZstd && chain_.size() == 1 && options_.frame_boundaries) {
        unwrap.on_frame_end = FrameEndRecorder(0);
      }
      if (format == Format::kXz && chain_.size() == 1 && options_.frame_boundaries) {
        unwrap.on_xz_block_end = XzBlockEndRecorder();
      }
      auto inner = std::make_unique<DetectStage>(this, Layer::kInsideWrapper);
      CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSink> unwrapper,
                           MakeUnwrapper(format, inner.get(), unwrap));
      stages_.push_back(std::move(inner));
      stages_.push_back(std::move(unwrapper));
      return stages_.back().get();
    }

    DecoderOptions decoder_options = options_.decoder;
    if (layer != Layer::kOutermost) decoder_options.container_size.reset();
    std::unique_ptr<Decoder> decoder;
    switch (format) {
      case Format::kRaw:
        if (auto foreign = DetectForeign(head)) {
          return UnsupportedError(ForeignFormatMessage(*foreign));
        }
        if (LooksLikeTar(head) && options_.inside_ova) {
          return UnsupportedError(
              "the OVA's disk is itself a tar archive; extract the disk image with 'tar -xf' "
              "and import it");
        }
        if (LooksLikeTar(head)) {
          // An OVA: its disk has a pipeline of its own, inside the decoder.
          PipelineOptions disk_options = options_;
          disk_options.decoder = decoder_options;
          decoder = MakeOvaDecoder(writer_, disk_options);
          ova_ = true;
          break;
        }
        // A fixed VHD is raw data with a footer at the end: seen at Finish().
        decoder = MakeRawOrFixedVhdDecoder(
            writer_, decoder_options,
            HasIso9660Signature(head) ? RawContent::kIso9660 : RawContent::kDisk);
        break;
      case Format::kQcow2:
        decoder = MakeQcow2Decoder(writer_, decoder_options);
        break;
      case Format::kVmdk:
        decoder = MakeVmdkDecoder(writer_, decoder_options);
        break;
      case Format::kVdi:
        decoder = MakeVdiDecoder(writer_, decoder_options);
        break;
      case Format::kVhd:
        decoder = MakeVhdDecoder(writer_, decoder_options);
        break;
      case Format::kVhdx:
        decoder = MakeVhdxDecoder(writer_, decoder_options);
        break;
      case Format::kGzip:
      case Format::kXz:
      case Format::kZstd:
        break;  // handled above
    }
    if (decoder == nullptr) {
      return InternalError("no decoder was built for " + std::string(FormatName(format)));
    }
    decoder_ = decoder.get();
    stages_.push_back(std::move(decoder));
    return stages_.back().get();
  }

  // The stages of a raw image inside zstd continued between two frames.
  Result<ByteSink*> BuildResumedZstd() {
    const FrameBoundary at = *options_.resume_zstd_at;
    UnwrapOptions unwrap = UnwrapOptionsFor();
    unwrap.zstd_continue_at = at.compressed;
    if (options_.frame_boundaries) unwrap.on_frame_end = FrameEndRecorder(at.decompressed);
    return BuildResumedRaw(Format::kZstd, at.decompressed, std::move(unwrap));
  }

  // The stages of a raw image inside xz continued between two blocks.
  Result<ByteSink*> BuildResumedXz() {
    const FrameBoundary at = *options_.resume_xz_at;
    if (!at.xz_stream) return InternalError("an xz stream is continued without its stream's start");
    UnwrapOptions unwrap = UnwrapOptionsFor();
    unwrap.xz_continue_at = XzBlockEnd{at.compressed, at.decompressed, *at.xz_stream};
    if (options_.frame_boundaries) unwrap.on_xz_block_end = XzBlockEndRecorder();
    return BuildResumedRaw(Format::kXz, at.decompressed, std::move(unwrap));
  }

  // A raw decoder from guest byte `decompressed` on, behind `wrapper`'s
  // unwrapper set up to continue (`unwrap`).
  Result<ByteSink*> BuildResumedRaw(Format wrapper, uint64_t decompressed, UnwrapOptions unwrap) {
    chain_ = {wrapper, Format::kRaw};
    DecoderOptions resumed = options_.decoder;
    resumed.container_size.reset();
    resumed.start_offset = decompressed;
    std::unique_ptr<Decoder> raw = MakeRawOrFixedVhdDecoder(writer_, resumed);
    decoder_ = raw.get();
    unwrap.max_output_bytes -= std::min(unwrap.max_output_bytes, decompressed);
    CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSink> unwrapper,
                         MakeUnwrapper(wrapper, raw.get(), unwrap));
    stages_.push_back(std::move(raw));
    stages_.push_back(std::move(unwrapper));
    return stages_.back().get();
  }

  bool RawInXz() const { return !ova_ && chain_ == std::vector<Format>{Format::kXz, Format::kRaw}; }

  // Records the block ends of an outermost xz layer (they count from the
  // source's start, a continued stream's too), while the image inside may
  // still be raw.
  std::function<void(const XzBlockEnd&)> XzBlockEndRecorder() {
    return [this](const XzBlockEnd& end) {
      if (chain_.size() > 1 && !RawInXz()) {
        frame_ends_.clear();  // another format inside: no one asks
        return;
      }
      const FrameBoundary point{end.compressed, end.decompressed, end.stream};
      // Empty blocks end where the one before did: the later point will do.
      if (!frame_ends_.empty() && frame_ends_.back().decompressed == point.decompressed) {
        frame_ends_.back() = point;
      } else {
        frame_ends_.push_back(point);
      }
    };
  }

  bool RawInZstd() const {
    return !ova_ && chain_ == std::vector<Format>{Format::kZstd, Format::kRaw};
  }

  // Records the frame ends of an outermost zstd layer whose output starts at
  // guest byte `base`, while the image inside may still be raw.
  std::function<void(uint64_t, uint64_t)> FrameEndRecorder(uint64_t base) {
    return [this, base](uint64_t compressed, uint64_t decompressed) {
      if (chain_.size() > 1 && !RawInZstd()) {
        frame_ends_.clear();  // another format inside: no one asks
        return;
      }
      const FrameBoundary end{compressed, base + decompressed, std::nullopt};
      // Empty frames end where the one before did: the later point will do.
      if (!frame_ends_.empty() && frame_ends_.back().decompressed == end.decompressed) {
        frame_ends_.back() = end;
      } else {
        frame_ends_.push_back(end);
      }
    };
  }

  UnwrapOptions UnwrapOptionsFor() const {
    return UnwrapOptions{
        .max_output_bytes = options_.max_unwrapped_bytes,
        .xz_memlimit = options_.xz_memlimit,
        .xz_memlimit_threading = options_.xz_memlimit_threading,
        .zstd_window_log_max = options_.zstd_window_log_max,
        .threads = options_.decoder.threads,
    };
  }

  GuestWriter* writer_ = nullptr;               // disk images
  tar::EntryWriter* archive_writer_ = nullptr;  // archives
  PipelineOptions options_;
  // Every stage but the root, in the order built. Stages call only downstream
  // and never in their destructors, so the order they are destroyed in is free.
  std::vector<std::unique_ptr<ByteSink>> stages_;
  DetectStage root_;
  std::vector<Format> chain_;   // outermost first
  Decoder* decoder_ = nullptr;  // in stages_, once built
  std::optional<uint64_t> zstd_declared_size_;  // of an outermost zstd wrapper
  // Frame ends of an outermost zstd wrapper not yet taken, oldest first.
  std::deque<FrameBoundary> frame_ends_;
  bool tar_built_ = false;      // the chain ends in the tar reader
  bool ova_ = false;            // the decoder is an OVA's (a tar in disk mode)
  Status status_;               // the first error, returned from then on
  bool finished_ = false;
};

ImagePipeline::ImagePipeline(GuestWriter* writer, PipelineOptions options)
    : impl_(std::make_unique<Impl>(writer, std::move(options))) {}

ImagePipeline::ImagePipeline(tar::EntryWriter* writer, PipelineOptions options)
    : impl_(std::make_unique<Impl>(writer, std::move(options))) {}

ImagePipeline::~ImagePipeline() = default;

Status ImagePipeline::Feed(std::span<const uint8_t> bytes) { return impl_->Feed(bytes); }

Status ImagePipeline::Finish() { return impl_->Finish(); }

std::vector<std::string> ImagePipeline::format_chain() const { return impl_->format_chain(); }

std::optional<ImageDescription> ImagePipeline::Describe() const { return impl_->Describe(); }

std::optional<uint64_t> ImagePipeline::DeclaredRawSize() const {
  return impl_->DeclaredRawSize();
}

Result<std::optional<ResumeAt>> ImagePipeline::Qcow2ResumePoint() {
  return impl_->Qcow2ResumePoint();
}

std::optional<FrameBoundary> ImagePipeline::TakeFrameBoundary(uint64_t covered) {
  return impl_->TakeFrameBoundary(covered);
}

}  // namespace cdi::formats
