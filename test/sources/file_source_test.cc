// Local sources through OpenSource: files, standard input, refused schemes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "sources/source.h"
#include "test/support/files.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

Result<std::unique_ptr<ByteSource>> Open(const std::string& url,
                                         const CancelToken* cancel = nullptr) {
  SourceSpec spec;
  spec.url = url;
  return OpenSource(spec, cancel);
}

// Reads a source to its end with the given buffer size.
Result<std::string> ReadAll(ByteSource& source, size_t buffer_size) {
  std::string out;
  std::vector<uint8_t> buffer(buffer_size);
  while (true) {
    CDI_ASSIGN_OR_RETURN(size_t n, source.Read(buffer));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
}

// Puts a pipe (or file) on standard input for the scope of the object.
class StdinRedirect {
 public:
  explicit StdinRedirect(int fd) : saved_(dup(0)) { dup2(fd, 0); }
  ~StdinRedirect() {
    dup2(saved_, 0);
    close(saved_);
  }

 private:
  int saved_;
};

TEST(FileSourceTest, ReadsAFileWithItsSize) {
  test::TempDir dir;
  std::string data = test::RandomBytes(3 * 1024 * 1024 + 17, 1);
  test::WriteFile(dir.File("disk.img"), data);
  Result<std::unique_ptr<ByteSource>> source = Open(dir.File("disk.img"));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), data.size());
  EXPECT_EQ((*source)->Describe(), dir.File("disk.img"));
  Result<std::string> read = ReadAll(**source, 65537);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(test::Sha256Bytes(*read), test::Sha256Bytes(data));
  // At the end, reads keep returning 0.
  std::vector<uint8_t> buffer(10);
  EXPECT_EQ(*(*source)->Read(buffer), 0u);
}

TEST(FileSourceTest, ReadsABlockDeviceWithItsSize) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  test::LoopDevice device({.size = 8 * kMiB, .fill = 0xab});
  Result<std::unique_ptr<ByteSource>> source = Open(device.path());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), 8 * kMiB);
  Result<std::string> read = ReadAll(**source, 1 << 20);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(*read == std::string(8 * kMiB, '\xab'));
}

TEST(FileSourceTest, EmptyFileEndsAtOnce) {
  test::TempDir dir;
  test::WriteFile(dir.File("empty"), "");
  Result<std::unique_ptr<ByteSource>> source = Open(dir.File("empty"));
  ASSERT_TRUE(source.ok());
  EXPECT_EQ((*source)->size(), 0u);
  EXPECT_EQ(*ReadAll(**source, 10), "");
}

TEST(FileSourceTest, FileTruncatedWhileReadIsAnError) {
  test::TempDir dir;
  test::WriteFile(dir.File("disk.img"), std::string(10000, 'a'));
  Result<std::unique_ptr<ByteSource>> source = Open(dir.File("disk.img"));
  ASSERT_TRUE(source.ok());
  ASSERT_EQ(truncate(dir.File("disk.img").c_str(), 4000), 0);
  Result<std::string> read = ReadAll(**source, 1000);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), ErrorCode::kIo);
  EXPECT_EQ(read.status().message(),
            dir.File("disk.img") +
                " ended after 4000 of 10000 bytes (was it truncated while being read?)");
}

TEST(FileSourceTest, MissingFileIsInvalidArgumentNamingThePath) {
  Result<std::unique_ptr<ByteSource>> source = Open("/nonexistent/dir/disk.qcow2");
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source.status().message(), "/nonexistent/dir/disk.qcow2: no such file or directory; check the path");
}

TEST(FileSourceTest, DirectoryIsRefused) {
  test::TempDir dir;
  Result<std::unique_ptr<ByteSource>> source = Open(dir.path());
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source.status().message(), dir.path() + ": it is a directory; give the path of a file");
}

TEST(FileSourceTest, CharacterDeviceIsRefused) {
  Result<std::unique_ptr<ByteSource>> source = Open("/dev/null");
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source.status().message(), "/dev/null: not a regular file or a block device");
}

TEST(FileSourceTest, PathWithAColonIsAFile) {
  test::TempDir dir;
  test::WriteFile(dir.File("a:b"), "xyz");
  Result<std::unique_ptr<ByteSource>> source = Open(dir.File("a:b"));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ(*ReadAll(**source, 2), "xyz");
}

TEST(OpenSourceTest, RefusesOtherSchemesByName) {
  struct Case {
    const char* url;
    const char* message;
  };
  for (const Case& c : {
           Case{"ftp://host/disk.img",
                "ftp:// sources are not supported: only http, https and s3 "
                "are (ftp://host/disk.img)"},
           Case{"file:///var/disk.img",
                "file:// sources are not supported: only http, https and s3 "
                "are (file:///var/disk.img)"},
           Case{"gs://user:secret@bucket/disk.img?sig=x",
                "gs:// sources are not supported: only http, https and s3 are "
                "(gs://bucket/disk.img)"},
       }) {
    Result<std::unique_ptr<ByteSource>> source = Open(c.url);
    ASSERT_FALSE(source.ok()) << c.url;
    EXPECT_EQ(source.status().code(), ErrorCode::kUnsupported);
    EXPECT_EQ(source.status().message(), c.message);
  }
}

TEST(OpenSourceTest, EmptyUrlIsInvalid) {
  Result<std::unique_ptr<ByteSource>> source = Open("");
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source.status().message(), "no source given: expected a URL, a path or -");
}

TEST(StdinSourceTest, ReadsAPipeOfUnknownSize) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::string data = test::RandomBytes(2 * 1024 * 1024 + 5, 2);
  std::thread writer([&] {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fds[1], data.data() + done, std::min<size_t>(70000, data.size() - done));
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fds[1]);
  });
  {
    StdinRedirect redirect(fds[0]);
    Result<std::unique_ptr<ByteSource>> source = Open("-");
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    EXPECT_EQ((*source)->size(), std::nullopt);
    EXPECT_EQ((*source)->Describe(), "standard input");
    Result<std::string> read = ReadAll(**source, 4099);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_EQ(test::Sha256Bytes(*read), test::Sha256Bytes(data));
  }
  writer.join();
  close(fds[0]);
}

TEST(StdinSourceTest, RedirectedFileHasASize) {
  test::TempDir dir;
  test::WriteFile(dir.File("disk.img"), "0123456789");
  int fd = open(dir.File("disk.img").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(lseek(fd, 3, SEEK_SET), 3);  // what is left from the current position
  {
    StdinRedirect redirect(fd);
    Result<std::unique_ptr<ByteSource>> source = Open("-");
    ASSERT_TRUE(source.ok());
    EXPECT_EQ((*source)->size(), 7u);
    EXPECT_EQ(*ReadAll(**source, 3), "3456789");
  }
  close(fd);
}

TEST(StdinSourceTest, CancelStopsAReadOnASilentPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  CancelToken cancel;
  {
    StdinRedirect redirect(fds[0]);
    Result<std::unique_ptr<ByteSource>> source = Open("-", &cancel);
    ASSERT_TRUE(source.ok());
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      cancel.Cancel();
    });
    std::vector<uint8_t> buffer(100);
    Result<size_t> read = (*source)->Read(buffer);  // nothing is ever written
    canceller.join();
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), ErrorCode::kCancelled);
    EXPECT_EQ(read.status().message(), "cancelled while reading standard input");
  }
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace cdi::importer
