// File facts that users check: digests, sizes, and which ranges hold data.
#ifndef CDI_TEST_SUPPORT_FILES_H_
#define CDI_TEST_SUPPORT_FILES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cdi::test {

// Lower-case hex sha256 of a file's (or block device's) whole content, or of
// its first `length` bytes when length is given.
std::string Sha256File(const std::string& path, uint64_t length = UINT64_MAX);
std::string Sha256Bytes(const std::string& bytes);

// Data extents [start, end) as SEEK_DATA/SEEK_HOLE report them.
using ExtentMap = std::vector<std::pair<uint64_t, uint64_t>>;
ExtentMap DataExtents(const std::string& path);
// Bytes of a file actually allocated on disk (st_blocks * 512).
uint64_t AllocatedBytes(const std::string& path);
uint64_t FileSize(const std::string& path);
bool FileExists(const std::string& path);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& contents);

// Writes `length` bytes of deterministic pseudo-random data from `seed`.
std::string RandomBytes(size_t length, uint32_t seed);

// For failure messages comparing two byte strings: where they first differ
// ("equal" if they do not).
std::string FirstDifference(const std::string& actual, const std::string& expected);

// Lists a directory's entry names (no "." or ".."), sorted.
std::vector<std::string> ListDir(const std::string& path);

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_FILES_H_
