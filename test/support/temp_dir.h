// A directory under $TMPDIR (or /tmp) removed with everything in it at scope end.
#ifndef CDI_TEST_SUPPORT_TEMP_DIR_H_
#define CDI_TEST_SUPPORT_TEMP_DIR_H_

#include <string>

namespace cdi::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_TEMP_DIR_H_
