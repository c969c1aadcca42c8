#include "sources/upload/snappy_stream.h"

#include <snappy.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/text.h"

namespace cdi::importer {
namespace {

constexpr size_t kMaxUncompressed = 65536;
// A compressed chunk is at most snappy's bound of 65536 bytes plus its CRC.
constexpr size_t kMaxChunk = 16 * 1024 * 1024;  // the 24-bit length's limit
constexpr char kIdentifier[] = "sNaPpY";

uint32_t Masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

class SnappyFramedSource final : public ByteSource {
 public:
  explicit SnappyFramedSource(std::unique_ptr<ByteSource> framed) : framed_(std::move(framed)) {}

  Result<size_t> Read(std::span<uint8_t> out) override {
    while (pos_ == data_.size()) {
      if (ended_) return size_t{0};
      CDI_RETURN_IF_ERROR(NextChunk());
    }
    const size_t n = std::min(out.size(), data_.size() - pos_);
    std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  std::optional<uint64_t> size() const override { return std::nullopt; }
  std::string Describe() const override { return framed_->Describe(); }

 private:
  // Fills `out` with exactly out.size() framed bytes; false at a clean end
  // before the first byte.
  Result<bool> ReadExactly(std::span<uint8_t> out) {
    size_t got = 0;
    while (got < out.size()) {
      CDI_ASSIGN_OR_RETURN(size_t n, framed_->Read(out.subspan(got)));
      if (n == 0) {
        if (got == 0) return false;
        return Corrupt("the stream ends inside a chunk");
      }
      got += n;
      offset_ += n;
    }
    return true;
  }

  Status Corrupt(const std::string& why) const {
    return CorruptImageError("the snappy-framed stream is damaged at byte " + Hex(offset_) + ": " +
                             why + "; the clone source sent something else than its cloner "
                             "writes");
  }

  Status NextChunk() {
    uint8_t header[4];
    const uint64_t chunk_offset = offset_;
    CDI_ASSIGN_OR_RETURN(bool more, ReadExactly(header));
    if (!more) {
      if (!seen_identifier_) return Corrupt("the stream is empty (no stream identifier)");
      ended_ = true;
      return Status::Ok();
    }
    const uint8_t type = header[0];
    const size_t length = size_t{header[1]} | (size_t{header[2]} << 8) | (size_t{header[3]} << 16);
    if (!seen_identifier_ && type != 0xff) {
      return Corrupt("it does not open with the snappy stream identifier (chunk type " +
                     Hex(type) + " at " + Hex(chunk_offset) + ")");
    }
    if (length > kMaxChunk) return Corrupt("a chunk is too long");
    chunk_.resize(length);
    if (length > 0) {
      CDI_ASSIGN_OR_RETURN(bool whole, ReadExactly(chunk_));
      if (!whole) return Corrupt("the stream ends inside a chunk");
    }
    data_.clear();
    pos_ = 0;
    switch (type) {
      case 0xff:
        if (length != 6 || std::memcmp(chunk_.data(), kIdentifier, 6) != 0) {
          return Corrupt("a stream identifier chunk is not \"sNaPpY\"");
        }
        seen_identifier_ = true;
        return Status::Ok();
      case 0x00:
      case 0x01: {
        if (length < 4) return Corrupt("a data chunk has no checksum");
        const uint32_t stored = uint32_t{chunk_[0]} | (uint32_t{chunk_[1]} << 8) |
                                (uint32_t{chunk_[2]} << 16) | (uint32_t{chunk_[3]} << 24);
        const char* payload = reinterpret_cast<const char*>(chunk_.data() + 4);
        const size_t payload_size = length - 4;
        if (type == 0x00) {
          size_t uncompressed = 0;
          if (!snappy::GetUncompressedLength(payload, payload_size, &uncompressed) ||
              uncompressed > kMaxUncompressed) {
            return Corrupt("a compressed chunk does not say a valid length");
          }
          data_.resize(uncompressed);
          if (!snappy::RawUncompress(payload, payload_size, reinterpret_cast<char*>(data_.data()))) {
            return Corrupt("a compressed chunk does not decompress");
          }
        } else {
          if (payload_size > kMaxUncompressed) return Corrupt("an uncompressed chunk is too long");
          data_.assign(chunk_.begin() + 4, chunk_.end());
        }
        if (Masked(Crc32c(0, data_)) != stored) {
          data_.clear();
          return Corrupt("a chunk's CRC-32C does not match its data");
        }
        return Status::Ok();
      }
      default:
        if (type >= 0x80) return Status::Ok();  // padding and reserved skippable chunks
        return Corrupt("reserved unskippable chunk type " + Hex(type));
    }
  }

  std::unique_ptr<ByteSource> framed_;
  std::vector<uint8_t> chunk_;
  std::vector<uint8_t> data_;
  size_t pos_ = 0;
  uint64_t offset_ = 0;
  bool seen_identifier_ = false;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<ByteSource> OpenSnappyFramedSource(std::unique_ptr<ByteSource> framed) {
  return std::make_unique<SnappyFramedSource>(std::move(framed));
}

}  // namespace cdi::importer
