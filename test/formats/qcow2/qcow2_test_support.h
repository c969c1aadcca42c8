// Helpers shared by the qcow2 decoder tests: a GuestWriter that writes a
// sparse raw file and checks the coverage contract, feeding an image in
// chunks, qemu-img as the reference, and patching images.
#ifndef CDI_TEST_FORMATS_QCOW2_QCOW2_TEST_SUPPORT_H_
#define CDI_TEST_FORMATS_QCOW2_QCOW2_TEST_SUPPORT_H_

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "formats/decoder.h"
#include "formats/qcow2/qcow2_decoder.h"
#include "test/support/files.h"
#include "test/support/guest_coverage.h"
#include "test/support/process.h"

namespace cdi::test::qcow2 {

using cdi::test::RangeSet;

// What a decoder did, as a user of the GuestWriter contract sees it.
struct Op {
  enum class Kind { kBegin, kWrite, kZero };
  Kind kind;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Writes the guest image into a sparse raw file (or nowhere, when the path is
// empty), checks every call against the GuestWriter contract and records
// what it saw.
class CheckingWriter : public formats::GuestWriter {
 public:
  explicit CheckingWriter(std::string path = "") : path_(std::move(path)) {}
  ~CheckingWriter() override {
    if (fd_ >= 0) close(fd_);
  }
  CheckingWriter(const CheckingWriter&) = delete;
  CheckingWriter& operator=(const CheckingWriter&) = delete;

  Status Begin(const formats::ImageDescription& image) override {
    Note(Op::Kind::kBegin, 0, 0);
    Violation(coverage_.Begin(image));
    if (!description_) description_ = image;
    if (!image.virtual_size) Violation("Begin without a virtual size");
    thread_ = std::this_thread::get_id();
    if (!path_.empty()) {
      fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(image.virtual_size.value_or(0))) != 0) {
        return IoError("cannot create " + path_);
      }
    }
    if (begin_status_) return *begin_status_;
    return Status::Ok();
  }

  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    Note(Op::Kind::kWrite, guest_offset, data.size());
    Cover(guest_offset, data.size());
    ++writes_;
    written_bytes_ += data.size();
    if (fd_ >= 0) {
      size_t done = 0;
      while (done < data.size()) {
        ssize_t n = pwrite(fd_, data.data() + done, data.size() - done,
                           static_cast<off_t>(guest_offset + done));
        if (n <= 0) return IoError("pwrite failed");
        done += static_cast<size_t>(n);
      }
    }
    if (on_write) on_write();
    if (fail_write_at_ && writes_ == *fail_write_at_) return IoError("injected write failure");
    return Status::Ok();
  }

  Status Zero(uint64_t guest_offset, uint64_t length) override {
    Note(Op::Kind::kZero, guest_offset, length);
    Cover(guest_offset, length);
    zero_ranges_.Add(guest_offset, guest_offset + length);
    return Status::Ok();
  }

  // Empty when the calls so far kept the contract; also checks completeness
  // when `complete` (after a successful Finish).
  std::string Problems(bool complete) const {
    std::string problems = violations_;
    if (complete) {
      std::string incomplete = coverage_.Complete();
      if (!incomplete.empty()) problems += incomplete + "; ";
    }
    return problems;
  }

  const std::optional<formats::ImageDescription>& description() const { return description_; }
  const std::vector<Op>& ops() const { return ops_; }
  const RangeSet& zero_ranges() const { return zero_ranges_; }
  uint64_t writes() const { return writes_; }
  uint64_t written_bytes() const { return written_bytes_; }
  size_t op_count() const { return ops_.size(); }

  void FailBeginWith(Status status) { begin_status_ = std::move(status); }
  void FailWriteNumber(uint64_t n) { fail_write_at_ = n; }
  std::function<void()> on_write;

 private:
  void Note(Op::Kind kind, uint64_t offset, uint64_t length) {
    if (kind != Op::Kind::kBegin) {
      if (thread_ != std::this_thread::get_id()) Violation("call from another thread");
    }
    ops_.push_back({kind, offset, length});
  }
  void Cover(uint64_t offset, uint64_t length) { Violation(coverage_.Range(offset, length)); }
  void Violation(const std::string& what) {
    if (!what.empty() && violations_.size() < 2000) violations_ += what + "; ";
  }

  std::string path_;
  int fd_ = -1;
  std::optional<formats::ImageDescription> description_;
  std::thread::id thread_;
  std::vector<Op> ops_;
  cdi::test::GuestCoverage coverage_;
  RangeSet zero_ranges_;
  std::string violations_;
  uint64_t writes_ = 0;
  uint64_t written_bytes_ = 0;
  std::optional<Status> begin_status_;
  std::optional<uint64_t> fail_write_at_;
};

// Feeds `image` to `decoder` in chunks of `chunk` bytes (the last may be
// shorter), then finishes. Stops at the first error and returns it.
inline Status FeedAll(formats::Decoder& decoder, const std::string& image, size_t chunk) {
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(image.data()), image.size());
  while (!bytes.empty()) {
    size_t n = std::min(chunk, bytes.size());
    Status status = decoder.Feed(bytes.first(n));
    if (!status.ok()) return status;
    bytes = bytes.subspan(n);
  }
  return decoder.Finish();
}

// The outcome of decoding one image into a raw file.
struct Decoded {
  Status status;
  std::string problems;  // contract violations seen by the writer
  formats::ImageDescription description;
  RangeSet zero_ranges;
  std::vector<Op> ops;
};

inline Decoded DecodeToFile(const std::string& image_path, const std::string& raw_path,
                            size_t chunk, formats::DecoderOptions options = {},
                            bool with_container_size = true) {
  std::string image = ReadFile(image_path);
  if (with_container_size) options.container_size = image.size();
  CheckingWriter writer(raw_path);
  auto decoder = formats::MakeQcow2Decoder(&writer, options);
  Decoded decoded;
  decoded.status = FeedAll(*decoder, image, chunk);
  decoded.problems = writer.Problems(decoded.status.ok());
  decoded.description = decoder->Describe();
  decoded.zero_ranges = writer.zero_ranges();
  decoded.ops = writer.ops();
  return decoded;
}

inline std::string Detail(const formats::ImageDescription& description, const std::string& key) {
  for (const auto& [name, value] : description.details) {
    if (name == key) return value;
  }
  return "";
}

// qemu-img's own reading of an image, as a raw file.
inline void QemuConvertToRaw(const std::string& image, const std::string& raw) {
  Sh("qemu-img convert -O raw '" + image + "' '" + raw + "'");
}

// Big-endian patching of an image held in a string.
inline uint64_t GetBE(const std::string& image, uint64_t offset, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value = (value << 8) | static_cast<uint8_t>(image.at(offset + i));
  }
  return value;
}
inline void PutBE(std::string& image, uint64_t offset, int bytes, uint64_t value) {
  for (int i = bytes - 1; i >= 0; --i) {
    image.at(offset + i) = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

// The facts tests patch around, read straight from the header.
struct Layout {
  uint64_t cluster_size = 0;
  uint64_t l1_offset = 0;
  uint64_t l1_size = 0;
  uint64_t refcount_table_offset = 0;

  explicit Layout(const std::string& image)
      : cluster_size(uint64_t{1} << GetBE(image, 20, 4)),
        l1_offset(GetBE(image, 40, 8)),
        l1_size(GetBE(image, 36, 4)),
        refcount_table_offset(GetBE(image, 48, 8)) {}
  uint64_t L1Entry(const std::string& image, uint64_t i) const {
    return GetBE(image, l1_offset + 8 * i, 8);
  }
  uint64_t L2Offset(const std::string& image, uint64_t i) const {
    return L1Entry(image, i) & 0x00fffffffffffe00ull;
  }
  uint64_t FirstRefcountBlock(const std::string& image) const {
    return GetBE(image, refcount_table_offset, 8) & ~0x1ffull;
  }
};

}  // namespace cdi::test::qcow2

#endif  // CDI_TEST_FORMATS_QCOW2_QCOW2_TEST_SUPPORT_H_
