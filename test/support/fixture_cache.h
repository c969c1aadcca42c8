// Test inputs that are slow to make, made once per build tree.
#ifndef CDI_TEST_SUPPORT_FIXTURE_CACHE_H_
#define CDI_TEST_SUPPORT_FIXTURE_CACHE_H_

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

namespace cdi::test {

// A directory of inputs that is slow to make (an image corpus), made once per
// build tree and shared by the test processes ctest starts (one per test):
// `make` fills a fresh directory, which becomes build/test-cache/<name> when
// it returns. Concurrent callers wait for the first one. Bump the name's
// version when `make` changes.
inline std::string CachedFixtureDir(const std::string& name,
                                    const std::function<void(const std::string& dir)>& make) {
  const std::string cache = std::string(CDI_BINARY_DIR) + "/test-cache";
  std::filesystem::create_directories(cache);
  const std::string dir = cache + "/" + name;
  int lock = open((dir + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  flock(lock, LOCK_EX);
  if (!std::filesystem::exists(dir)) {
    const std::string partial = dir + ".partial";
    std::filesystem::remove_all(partial);
    std::filesystem::create_directories(partial);
    make(partial);
    std::filesystem::rename(partial, dir);
  }
  flock(lock, LOCK_UN);
  close(lock);
  return dir;
}

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_FIXTURE_CACHE_H_
