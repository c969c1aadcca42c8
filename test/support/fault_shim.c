/* Storage faults for end-to-end tests, loaded with LD_PRELOAD into the
 * programs under test: writes and flushes of chosen files fail with a chosen
 * errno, as a full disk, an exhausted quota or a failing device would make
 * them fail.
 *
 *   CDI_FAULT_PATH   fail calls on files whose path (/proc/self/fd/N) holds
 *                    this text; unset: the shim does nothing
 *   CDI_FAULT_CALL   "write": pwrite, pwrite64, write and pwritev fail once
 *                    CDI_FAULT_AFTER bytes were written to such files (the
 *                    write that crosses the mark is cut short there, as the
 *                    kernel does, and every later one fails);
 *                    "fsync": fsync and fdatasync fail once CDI_FAULT_AFTER
 *                    bytes were written
 *   CDI_FAULT_ERRNO  ENOSPC, EDQUOT, EIO, or a number (default EIO)
 *   CDI_FAULT_AFTER  bytes (default 0)
 *   CDI_FAULT_LOG    file that receives one line per intercepted call on a
 *                    matching file: "<call> <offset> <length> ok|<errno>"
 *                    (offset -1 when the call has none)
 *
 * Thread-safe: the byte count is atomic; the log is appended with one
 * write(2) per line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum FaultCall { kNone, kWrite, kFsync };

static _Atomic long long written_bytes;

static enum FaultCall Configured(void) {
  const char* call = getenv("CDI_FAULT_CALL");
  if (getenv("CDI_FAULT_PATH") == NULL || call == NULL) return kNone;
  if (strcmp(call, "write") == 0) return kWrite;
  if (strcmp(call, "fsync") == 0) return kFsync;
  return kNone;
}

static int FaultErrno(void) {
  const char* name = getenv("CDI_FAULT_ERRNO");
  if (name == NULL || strcmp(name, "EIO") == 0) return EIO;
  if (strcmp(name, "ENOSPC") == 0) return ENOSPC;
  if (strcmp(name, "EDQUOT") == 0) return EDQUOT;
  int number = atoi(name);
  return number > 0 ? number : EIO;
}

static long long FaultAfter(void) {
  const char* after = getenv("CDI_FAULT_AFTER");
  return after == NULL ? 0 : atoll(after);
}

/* True when `fd` is a file whose path holds CDI_FAULT_PATH. */
static int Matches(int fd) {
  const char* needle = getenv("CDI_FAULT_PATH");
  if (needle == NULL || fd < 0) return 0;
  char link[64];
  char path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t length = readlink(link, path, sizeof path - 1);
  if (length <= 0) return 0;
  path[length] = '\0';
  return strstr(path, needle) != NULL;
}

static ssize_t RealWrite(int fd, const void* data, size_t length) {
  static ssize_t (*real)(int, const void*, size_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  return real(fd, data, length);
}

static void Log(const char* call, long long offset, size_t length, int error) {
  const char* path = getenv("CDI_FAULT_LOG");
  if (path == NULL) return;
  char line[160];
  int n = snprintf(line, sizeof line, "%s %lld %zu %s\n", call, offset, length,
                   error == 0 ? "ok" : strerrorname_np(error));
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  RealWrite(fd, line, (size_t)n);
  close(fd);
}

/* How many of `length` bytes a write to a matching file may write; -1 with
 * errno set when none. */
static ssize_t Allowance(size_t length) {
  long long after = FaultAfter();
  long long before = atomic_load(&written_bytes);
  if (before >= after) {
    errno = FaultErrno();
    return -1;
  }
  long long room = after - before;
  return (ssize_t)((long long)length < room ? (long long)length : room);
}

/* Writes are counted in both modes: "fsync" fails flushes only once
 * CDI_FAULT_AFTER bytes were written. */
#define INTERCEPT_WRITE(call, real_call, offset_value)                         \
  enum FaultCall mode = Configured();                                          \
  if (mode == kNone || !Matches(fd)) return real_call;                         \
  if (mode == kWrite) {                                                        \
    ssize_t allowed = Allowance(length);                                       \
    if (allowed < 0) {                                                         \
      int error = errno;                                                       \
      Log(call, offset_value, length, error);                                  \
      errno = error;                                                           \
      return -1;                                                               \
    }                                                                          \
    length = (size_t)allowed;                                                  \
  }                                                                            \
  ssize_t result = real_call;                                                  \
  int saved = errno;                                                           \
  if (result > 0) atomic_fetch_add(&written_bytes, (long long)result);         \
  Log(call, offset_value, length, result < 0 ? saved : 0);                     \
  errno = saved;                                                               \
  return result;

ssize_t pwrite(int fd, const void* data, size_t length, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  INTERCEPT_WRITE("pwrite", real(fd, data, length, offset), (long long)offset)
}

ssize_t pwrite64(int fd, const void* data, size_t length, off64_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off64_t);
  if (real == NULL) {
    real = (ssize_t(*)(int, const void*, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
  }
  INTERCEPT_WRITE("pwrite", real(fd, data, length, offset), (long long)offset)
}

ssize_t write(int fd, const void* data, size_t length) {
  INTERCEPT_WRITE("write", RealWrite(fd, data, length), -1LL)
}

ssize_t pwritev(int fd, const struct iovec* vectors, int count, off_t offset) {
  static ssize_t (*real)(int, const struct iovec*, int, off_t);
  if (real == NULL) {
    real = (ssize_t(*)(int, const struct iovec*, int, off_t))dlsym(RTLD_NEXT, "pwritev");
  }
  enum FaultCall mode = Configured();
  if (mode == kNone || !Matches(fd)) return real(fd, vectors, count, offset);
  size_t length = 0;
  for (int i = 0; i < count; ++i) length += vectors[i].iov_len;
  if (mode == kWrite && Allowance(length) != (ssize_t)length) {
    /* Cut short or refused: report the failure for the whole vector. */
    int error = FaultErrno();
    Log("pwritev", (long long)offset, length, error);
    errno = error;
    return -1;
  }
  ssize_t result = real(fd, vectors, count, offset);
  if (result > 0) atomic_fetch_add(&written_bytes, (long long)result);
  Log("pwritev", (long long)offset, length, result < 0 ? errno : 0);
  return result;
}

static int Flush(const char* call, int fd, int (*real)(int)) {
  if (Configured() != kFsync || !Matches(fd)) return real(fd);
  if (atomic_load(&written_bytes) >= FaultAfter()) {
    int error = FaultErrno();
    Log(call, -1, 0, error);
    errno = error;
    return -1;
  }
  int result = real(fd);
  Log(call, -1, 0, result < 0 ? errno : 0);
  return result;
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return Flush("fsync", fd, real);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return Flush("fdatasync", fd, real);
}
