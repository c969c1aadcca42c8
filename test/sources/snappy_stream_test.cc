// The snappy framing format read back: chunks made here with libsnappy and
// the format's own rules, and the damage it refuses.
#include "sources/upload/snappy_stream.h"

#include <gtest/gtest.h>
#include <snappy.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "test/support/files.h"

namespace cdi::importer {
namespace {

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(std::span<uint8_t> out) override {
    const size_t n = std::min({out.size(), data_.size() - pos_, size_t{777}});
    std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  std::optional<uint64_t> size() const override { return data_.size(); }
  std::string Describe() const override { return "test stream"; }

 private:
  std::string data_;
  size_t pos_ = 0;
};

std::string Le(uint32_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

uint32_t MaskedCrc(const std::string& data) {
  const uint32_t crc =
      Crc32c(0, std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string Chunk(uint8_t type, const std::string& body) {
  return std::string(1, static_cast<char>(type)) + Le(static_cast<uint32_t>(body.size()), 3) + body;
}

const std::string kIdentifier = Chunk(0xff, "sNaPpY");

std::string Compressed(const std::string& data) {
  std::string packed;
  snappy::Compress(data.data(), data.size(), &packed);
  return Chunk(0x00, Le(MaskedCrc(data), 4) + packed);
}
std::string Uncompressed(const std::string& data) {
  return Chunk(0x01, Le(MaskedCrc(data), 4) + data);
}

Result<std::string> Decode(const std::string& framed) {
  auto source = OpenSnappyFramedSource(std::make_unique<StringSource>(framed));
  std::string out;
  std::vector<uint8_t> buffer(5000);
  while (true) {
    CDI_ASSIGN_OR_RETURN(size_t n, source->Read(buffer));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
}

TEST(SnappyStreamTest, EveryChunkKind) {
  const std::string a = test::RandomBytes(65536, 1);
  const std::string b(40000, 'z');
  const std::string c = test::RandomBytes(100, 2);
  const std::string framed = kIdentifier + Compressed(a) + Chunk(0xfe, std::string(9, '\0')) +
                             kIdentifier + Compressed(b) + Chunk(0x80, "skip me") +
                             Uncompressed(c);
  auto decoded = Decode(framed);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_TRUE(*decoded == a + b + c);
}

TEST(SnappyStreamTest, DamageIsRefusedWithItsOffset) {
  const std::string data = test::RandomBytes(1000, 3);
  std::string bad_crc = kIdentifier + Uncompressed(data);
  bad_crc[20] ^= 1;
  auto crc = Decode(bad_crc);
  ASSERT_FALSE(crc.ok());
  EXPECT_EQ(crc.status().code(), ErrorCode::kCorruptImage);
  EXPECT_NE(crc.status().message().find("CRC-32C does not match"), std::string::npos);

  auto no_identifier = Decode(Uncompressed(data));
  ASSERT_FALSE(no_identifier.ok());
  EXPECT_NE(no_identifier.status().message().find("stream identifier"), std::string::npos);

  auto cut = Decode((kIdentifier + Compressed(data)).substr(0, 30));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("ends inside a chunk"), std::string::npos);

  auto reserved = Decode(kIdentifier + Chunk(0x02, "x"));
  ASSERT_FALSE(reserved.ok());
  EXPECT_NE(reserved.status().message().find("reserved unskippable chunk type 0x2"),
            std::string::npos)
      << reserved.status().message();

  auto garbage = Decode(kIdentifier + Chunk(0x00, Le(0, 4) + "\xff\xff\xff\xff\xff"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), ErrorCode::kCorruptImage);

  EXPECT_FALSE(Decode("").ok());
}

}  // namespace
}  // namespace cdi::importer
