// Helpers for end-to-end tests: run the built binaries, make images.
#ifndef CDI_TEST_E2E_E2E_UTIL_H_
#define CDI_TEST_E2E_E2E_UTIL_H_

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "test/support/files.h"
#include "test/support/fixture_cache.h"
#include "test/support/process.h"

namespace cdi::test {

// Runs build/bin/cdi-image with `args`.
inline RunResult CdiImage(const std::vector<std::string>& args, const RunOptions& options = {}) {
  std::vector<std::string> argv = {BinDir() + "/cdi-image"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, options);
}

// Whether `text` holds `part` (for messages and logs).
inline bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A raw image of `blocks` 64 KiB blocks: random data, except every
// `zero_every`-th block, which is zero. Returns its bytes.
// The source offset a checkpoint file claims ("source-offset N"); 0 when
// there is none, or it is not complete yet (no seal line).
inline uint64_t CheckpointClaims(const std::string& checkpoint) {
  if (!FileExists(checkpoint)) return 0;
  const std::string text = ReadFile(checkpoint);
  const size_t at = text.find("\nsource-offset ");
  if (at == std::string::npos || text.find("\nsha256 ") == std::string::npos) return 0;
  return std::stoull(text.substr(at + 15));
}

inline std::string MakeRawImage(size_t blocks, size_t zero_every, uint32_t seed) {
  std::string image = RandomBytes(blocks * 65536, seed);
  for (size_t b = 0; b < blocks; b += zero_every) {
    std::fill(image.begin() + static_cast<long>(b * 65536),
              image.begin() + static_cast<long>((b + 1) * 65536), '\0');
  }
  return image;
}

// Byte ranges [start, end) of `image` that are not zero, at 4 KiB granularity.
inline ExtentMap NonZeroExtents(const std::string& image) {
  ExtentMap extents;
  for (size_t off = 0; off < image.size(); off += 4096) {
    size_t end = std::min(image.size(), off + 4096);
    // Only this block is looked at: a search bounded by the image's end would
    // cross every zero block that follows, once per block.
    bool zero = std::string_view(image).substr(off, end - off).find_first_not_of('\0') ==
                std::string_view::npos;
    if (zero) continue;
    if (!extents.empty() && extents.back().second == off) {
      extents.back().second = end;
    } else {
      extents.emplace_back(off, end);
    }
  }
  return extents;
}

}  // namespace cdi::test

#endif  // CDI_TEST_E2E_E2E_UTIL_H_
