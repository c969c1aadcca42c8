// Builds tar archives byte by byte for tests: well-formed ones in each
// header dialect, and hostile or damaged ones that tar programs refuse to
// write.
#ifndef CDI_TEST_POD_TAR_BUILDER_H_
#define CDI_TEST_POD_TAR_BUILDER_H_

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace cdi::test {

enum class TarMagic { kUstar, kGnu, kNone };

struct TarHeader {
  std::string name;
  char typeflag = '0';
  uint64_t size = 0;
  uint32_t mode = 0644;
  uint64_t mtime = 1700000000;
  std::string linkname;
  std::string prefix;  // ustar only
  TarMagic magic = TarMagic::kUstar;
  bool base256_size = false;  // GNU's encoding for large sizes
};

class TarBuilder {
 public:
  // Appends a header block (with a correct checksum unless `corrupt_checksum`).
  TarBuilder& Header(const TarHeader& h, bool corrupt_checksum = false) {
    std::string block(512, '\0');
    auto put = [&](size_t offset, size_t length, const std::string& value) {
      std::memcpy(&block[offset], value.data(), std::min(length, value.size()));
    };
    auto octal = [&](size_t offset, size_t length, uint64_t value) {
      char text[32];
      std::snprintf(text, sizeof text, "%0*llo", static_cast<int>(length - 1),
                    static_cast<unsigned long long>(value));
      put(offset, length - 1, text);
    };
    put(0, 100, h.name);
    octal(100, 8, h.mode);
    octal(108, 8, 0);
    octal(116, 8, 0);
    if (h.base256_size) {
      block[124] = static_cast<char>(0x80);
      for (int i = 0; i < 8; ++i) block[135 - i] = static_cast<char>((h.size >> (8 * i)) & 0xFF);
    } else {
      octal(124, 12, h.size);
    }
    octal(136, 12, h.mtime);
    block[156] = h.typeflag;
    put(157, 100, h.linkname);
    if (h.magic == TarMagic::kUstar) {
      put(257, 6, std::string("ustar\0", 6));
      put(263, 2, "00");
      put(345, 155, h.prefix);
    } else if (h.magic == TarMagic::kGnu) {
      put(257, 8, std::string("ustar  \0", 8));
    }
    std::memset(&block[148], ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : block) sum += c;
    if (corrupt_checksum) sum += 1;
    char text[16];
    std::snprintf(text, sizeof text, "%06o", sum);
    std::memcpy(&block[148], text, 7);  // six digits, NUL, then the space already there
    bytes += block;
    return *this;
  }

  // Appends data padded to a whole block.
  TarBuilder& Data(const std::string& data) {
    bytes += data;
    bytes.append((512 - data.size() % 512) % 512, '\0');
    return *this;
  }

  TarBuilder& File(const std::string& name, const std::string& data, uint32_t mode = 0644) {
    return Header({.name = name, .typeflag = '0', .size = data.size(), .mode = mode}).Data(data);
  }
  TarBuilder& Directory(const std::string& name, uint32_t mode = 0755) {
    return Header({.name = name, .typeflag = '5', .mode = mode});
  }
  // A pax extended header ('x') or global header ('g') holding `records`
  // (already formatted "<len> key=value\n").
  TarBuilder& Pax(const std::string& records, char typeflag = 'x') {
    return Header({.name = "PaxHeaders/x", .typeflag = typeflag, .size = records.size()})
        .Data(records);
  }
  TarBuilder& GnuLongName(const std::string& name) {
    std::string data = name + '\0';
    return Header({.name = "././@LongLink",
                   .typeflag = 'L',
                   .size = data.size(),
                   .magic = TarMagic::kGnu})
        .Data(data);
  }
  // The end-of-archive marker: two zero blocks.
  TarBuilder& End() {
    bytes.append(1024, '\0');
    return *this;
  }

  std::string bytes;
};

// One pax record, "<length> <key>=<value>\n", its length counting itself.
inline std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t length = body.size() + 1;
  while (std::to_string(length).size() + body.size() != length) ++length;
  return std::to_string(length) + body;
}

}  // namespace cdi::test

#endif  // CDI_TEST_POD_TAR_BUILDER_H_
