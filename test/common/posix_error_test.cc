#include "common/posix_error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace cdi {
namespace {

constexpr const char* kWhat = "writing 4096 bytes to /data/disk.img at offset 1048576";

TEST(PosixErrorTest, NoSpaceUsesThePhrasesCdisControllerMatches) {
  Status enospc = PosixError(ENOSPC, kWhat);
  EXPECT_EQ(enospc.code(), ErrorCode::kTooSmall);
  EXPECT_FALSE(enospc.retryable());
  EXPECT_EQ(enospc.message(), std::string(kWhat) +
                                  ": no space left on device; the image does not fit: a larger "
                                  "volume is required");

  Status edquot = PosixError(EDQUOT, kWhat);
  EXPECT_EQ(edquot.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(edquot.message(), std::string(kWhat) +
                                  ": disk quota exceeded; the image does not fit: a larger "
                                  "volume (or quota) is required");
}

TEST(PosixErrorTest, IoErrorsAreIo) {
  Status eio = PosixError(EIO, kWhat);
  EXPECT_EQ(eio.code(), ErrorCode::kIo);
  EXPECT_FALSE(eio.retryable());
  EXPECT_EQ(eio.message(), std::string(kWhat) +
                               ": input/output error: the storage failed; check the volume and "
                               "the node's kernel log");

  Status other = PosixError(EXDEV, kWhat);
  EXPECT_EQ(other.code(), ErrorCode::kIo);
  EXPECT_EQ(other.message(), std::string(kWhat) +
                                 ": Invalid cross-device link (errno 18); check the volume and "
                                 "the node's kernel log");
}

TEST(PosixErrorTest, BusyDeviceSaysItIsInUse) {
  Status busy = PosixError(EBUSY, "opening block device /dev/sdb for writing");
  EXPECT_EQ(busy.code(), ErrorCode::kIo);
  EXPECT_TRUE(busy.retryable());
  EXPECT_EQ(busy.message(),
            "opening block device /dev/sdb for writing: device or resource busy: it is in use "
            "(mounted, or opened exclusively by another program); unmount it or stop the other "
            "program, then retry");
}

TEST(PosixErrorTest, PathProblemsAreInvalidArguments) {
  for (auto [error_number, cause] :
       {std::pair{ENOENT,
                  "no such file or directory; check the path and that the volume is "
                  "mounted"},
        std::pair{EACCES,
                  "permission denied; check the volume's owner and mode, or run as a "
                  "user allowed to write it"},
        std::pair{EROFS, "read-only file system or device; attach the volume read-write"},
        std::pair{EISDIR, "it is a directory; give the path of a file"},
        std::pair{ENAMETOOLONG, "file name too long; choose a shorter name"}}) {
    Status status = PosixError(error_number, "creating /data/.disk.img.partial");
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << cause;
    EXPECT_EQ(status.message(), std::string("creating /data/.disk.img.partial: ") + cause);
  }
}

TEST(PosixErrorTest, ReadingAnInputGivesAdviceForAnInput) {
  for (auto [error_number, cause] :
       {std::pair{ENOENT, "no such file or directory; check the path"},
        std::pair{EACCES,
                  "permission denied; check the file's owner and mode, or run as a user "
                  "allowed to read it"},
        std::pair{EISDIR, "it is a directory; give the path of a file"},
        std::pair{ENOTDIR, "not a directory (the path or one of its parents); check the path"}}) {
    Status status = PosixError(error_number, "opening /images/disk.qcow2", PathUse::kRead);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << cause;
    EXPECT_EQ(status.message(), std::string("opening /images/disk.qcow2: ") + cause);
  }
}

TEST(PosixErrorTest, InterruptionsAreRetryable) {
  Status status = PosixError(EINTR, kWhat);
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), std::string(kWhat) + ": Interrupted system call; try again");
}

}  // namespace
}  // namespace cdi
