// libFuzzer target for the whole format side of an import: detection,
// gzip/xz/zstd unwrapping, and the raw (with its fixed-VHD footer check),
// qcow2, vhd and tar decoders behind them.
//
// Input layout: byte 0 selects disk image or archive content and the limits,
// byte 1 seeds the chunk sizes, the rest is the stream. Output is checked for
// the contracts of formats/decoder.h and formats/tar/tar_reader.h; any
// violation aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "formats/decoder.h"
#include "formats/pipeline.h"
#include "formats/tar/tar_reader.h"
#include "test/fuzz/decoder_fuzzing.h"

namespace {

using cdi::Status;

[[noreturn]] void Violation(const char* what) {
  fprintf(stderr, "contract violated: %s\n", what);
  abort();
}

// Checks the entry protocol: Begin, exactly `size` bytes of Data, End.
class CheckingEntries : public cdi::formats::tar::EntryWriter {
 public:
  Status Begin(const cdi::formats::tar::Entry& entry) override {
    if (open_) Violation("entries overlap");
    if (entry.path.empty() || entry.path.front() == '/') Violation("unsafe path");
    if (entry.path == ".." || entry.path.find("../") == 0 ||
        entry.path.find("/../") != std::string::npos) {
      Violation("path escapes the root");
    }
    open_ = true;
    left_ = entry.size;
    return Status::Ok();
  }
  Status Data(std::span<const uint8_t> data) override {
    if (!open_ || data.size() > left_) Violation("data outside an entry or past its size");
    left_ -= data.size();
    return Status::Ok();
  }
  Status End() override {
    if (!open_ || left_ != 0) Violation("entry ended early");
    open_ = false;
    return Status::Ok();
  }

 private:
  bool open_ = false;
  uint64_t left_ = 0;
};

template <typename Writer>
void Feed(Writer* writer, const uint8_t* data, size_t size, uint8_t options, uint8_t seed) {
  cdi::formats::PipelineOptions pipeline_options;
  pipeline_options.max_unwrapped_bytes = (options & 2) ? (1u << 16) : (8u << 20);
  pipeline_options.xz_memlimit = 16u << 20;
  pipeline_options.zstd_window_log_max = 20;
  pipeline_options.decoder.memory_budget = 4u << 20;
  pipeline_options.decoder.threads = (options & 4) ? 2 : 1;
  if (options & 8) pipeline_options.decoder.container_size = size;
  // Points between zstd frames and xz blocks, as an import with checkpoints
  // asks for them (the xz unwrapper then decodes block by block itself).
  pipeline_options.frame_boundaries = (options & 16) != 0;
  cdi::formats::ImagePipeline pipeline(writer, pipeline_options);
  size_t pos = 0;
  uint32_t state = seed | 1u;
  while (pos < size) {
    state = state * 1103515245u + 12345u;
    size_t chunk = 1 + (state >> 16) % 4099;
    if (chunk > size - pos) chunk = size - pos;
    if (!pipeline.Feed(std::span<const uint8_t>(data + pos, chunk)).ok()) return;
    pos += chunk;
    if (auto point = pipeline.TakeFrameBoundary(UINT64_MAX); point && point->compressed > pos) {
      Violation("a point between frames or blocks past the input fed");
    }
  }
  (void)pipeline.Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t options = data[0];
  const uint8_t seed = data[1];
  data += 2;
  size -= 2;
  if (options & 1) {
    CheckingEntries entries;
    Feed(&entries, data, size, options, seed);
  } else {
    cdi::fuzz::ContractWriter writer(cdi::fuzz::ContractWriter::Size::kOptional);
    Feed(&writer, data, size, options, seed);
  }
  return 0;
}
