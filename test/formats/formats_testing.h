// Helpers for the formats tests: a recording GuestWriter that checks the
// coverage contract of formats/decoder.h (test/support/guest_coverage.h), a recording ByteSink, test data with
// and without zero runs, and compression with the real gzip, xz and zstd tools.
#ifndef CDI_TEST_FORMATS_FORMATS_TESTING_H_
#define CDI_TEST_FORMATS_FORMATS_TESTING_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "formats/decoder.h"
#include "formats/detect.h"
#include "test/support/files.h"
#include "test/support/guest_coverage.h"
#include "test/support/process.h"

namespace cdi::formats::testing {

// A GuestWriter that keeps the image it is given (or only the ranges), every
// call in order, and what broke the contract (test/support/guest_coverage.h).
class RecordingWriter : public GuestWriter {
 public:
  enum class Kind { kWrite, kZero };
  struct Op {
    Kind kind;
    uint64_t guest_offset;
    uint64_t length;
    const uint8_t* data;  // kWrite: the pointer handed in (valid only during the call)
    bool operator==(const Op&) const = default;
  };
  enum class Content { kKeep, kDrop };  // kDrop: only ranges, for huge outputs

  explicit RecordingWriter(Content content = Content::kKeep) : content_(content) {}

  // Every later call returns `status` (after recording the call).
  void FailWith(Status status) { fail_with_ = std::move(status); }

  Status Begin(const ImageDescription& image) override {
    ++begin_calls_;
    Note(coverage_.Begin(image));
    description_ = image;
    return fail_with_;
  }

  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    Record(Kind::kWrite, guest_offset, data.size(), data.data());
    if (content_ == Content::kKeep && !data.empty()) {
      if (image_.size() < guest_offset + data.size()) image_.resize(guest_offset + data.size());
      std::memcpy(image_.data() + guest_offset, data.data(), data.size());
    }
    return fail_with_;
  }

  Status Zero(uint64_t guest_offset, uint64_t length) override {
    Record(Kind::kZero, guest_offset, length, nullptr);
    if (content_ == Content::kKeep && image_.size() < guest_offset + length) {
      image_.resize(guest_offset + length);
    }
    return fail_with_;
  }

  // The contract as test/support/guest_coverage.h checks it: the first
  // violation of any call, else whether the coverage is complete.
  ::testing::AssertionResult CoverageOk() const {
    std::string problem = violations_.empty() ? coverage_.Complete() : violations_.front();
    if (problem.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << problem;
  }

  int begin_calls() const { return begin_calls_; }
  const std::optional<ImageDescription>& description() const { return description_; }
  const std::vector<Op>& ops() const { return ops_; }
  // The image as written; zero ranges read as zero.
  const std::string& image() const { return image_; }
  // One past the highest byte any call covered.
  uint64_t end() const { return coverage_.covered().End(); }

 private:
  void Record(Kind kind, uint64_t guest_offset, uint64_t length, const uint8_t* data) {
    ops_.push_back(Op{kind, guest_offset, length, data});
    Note(coverage_.Range(guest_offset, length));
  }
  void Note(std::string violation) {
    if (!violation.empty()) violations_.push_back(std::move(violation));
  }

  Content content_;
  Status fail_with_;
  int begin_calls_ = 0;
  std::optional<ImageDescription> description_;
  std::vector<Op> ops_;
  std::vector<std::string> violations_;
  cdi::test::GuestCoverage coverage_;
  std::string image_;
};

// A ByteSink that keeps what it is fed and the size of every chunk.
class RecordingSink : public ByteSink {
 public:
  void FailWith(Status status) { fail_with_ = std::move(status); }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (finished_) return InternalError("fed after Finish()");
    data_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    chunk_sizes_.push_back(bytes.size());
    return fail_with_;
  }
  Status Finish() override {
    ++finish_calls_;
    finished_ = true;
    return fail_with_;
  }

  const std::string& data() const { return data_; }
  const std::vector<size_t>& chunk_sizes() const { return chunk_sizes_; }
  int finish_calls() const { return finish_calls_; }

 private:
  Status fail_with_;
  std::string data_;
  std::vector<size_t> chunk_sizes_;
  int finish_calls_ = 0;
  bool finished_ = false;
};

inline std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Feeds `data` to `sink` in chunks of `chunk` bytes, then finishes it; returns
// the first error.
inline Status FeedInChunks(ByteSink& sink, const std::string& data, size_t chunk) {
  for (size_t offset = 0; offset < data.size(); offset += chunk) {
    size_t length = std::min(chunk, data.size() - offset);
    Status status = sink.Feed(Bytes(data).subspan(offset, length));
    if (!status.ok()) return status;
  }
  return sink.Finish();
}

enum class Pattern {
  kRandom,    // incompressible
  kZeroRuns,  // random stretches between runs of zeros, 1 byte to 300 KiB each
};

// Readable parameters in test names and failure messages.
inline void PrintTo(Pattern pattern, std::ostream* os) {
  *os << (pattern == Pattern::kRandom ? "random" : "zero runs");
}

inline std::string MakeData(size_t size, Pattern pattern, uint32_t seed = 1) {
  std::string data = cdi::test::RandomBytes(size, seed);
  if (pattern == Pattern::kZeroRuns) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> run_length(1, 300 << 10);
    bool zeros = true;
    for (size_t offset = 0; offset < size; zeros = !zeros) {
      size_t length = std::min(run_length(rng), size - offset);
      if (zeros) std::fill_n(data.begin() + static_cast<ptrdiff_t>(offset), length, '\0');
      offset += length;
    }
  }
  return data;
}

// Compresses `data` with the real tool for `wrapper` (gzip, xz or zstd),
// adding `arguments`; fails the test if the tool does.
inline std::string Compress(Format wrapper, const std::string& data,
                            const std::vector<std::string>& arguments = {}) {
  std::vector<std::string> argv;
  switch (wrapper) {
    case Format::kGzip:
      argv = {"gzip", "-c", "-n"};
      break;
    case Format::kXz:
      // -0: the fastest preset (the decoder's path is the same LZMA2); tests
      // that need another preset pass it in `arguments`, which come later.
      argv = {"xz", "-c", "-T1", "-0"};
      break;
    case Format::kZstd:
      argv = {"zstd", "-c", "-q"};
      break;
    default:
      ADD_FAILURE() << "not a wrapper: " << FormatName(wrapper);
      return {};
  }
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  cdi::test::RunOptions options;
  options.stdin_data = data;
  cdi::test::RunResult result = cdi::test::Run(argv, options);
  EXPECT_EQ(result.exit_code, 0) << argv[0] << ": " << result.err;
  return result.out;
}

}  // namespace cdi::formats::testing

namespace cdi::formats {
// Readable parameters in test names and failure messages.
inline void PrintTo(Format format, std::ostream* os) { *os << FormatName(format); }
}  // namespace cdi::formats

#endif  // CDI_TEST_FORMATS_FORMATS_TESTING_H_
