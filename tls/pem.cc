#include "tls/pem.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/posix_error.h"

namespace cdi::tls {
namespace {

constexpr size_t kMaxPemFileSize = 16 * 1024 * 1024;

// OpenSSL asks for a passphrase when it meets an encrypted PEM block; saying
// "none" keeps it from prompting on a terminal.
int NoPassphrase(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

BioPtr MemoryBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

bool IsEndOfPemInput() {
  unsigned long error = ERR_peek_last_error();  // NOLINT(google-runtime-int)
  return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
}

}  // namespace

Status FileError(int error, std::string_view what, const std::string& path) {
  return PosixError(error, std::string(what) + " " + path, PathUse::kRead);
}

Result<std::string> ReadPemFile(const std::string& path, std::string_view what) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, what, path);
  struct stat info {};
  std::string text;
  Status status;
  if (fstat(fd, &info) != 0) {
    status = FileError(errno, what, path);
  } else if (S_ISDIR(info.st_mode)) {
    status = FileError(EISDIR, what, path);
  } else if (static_cast<uint64_t>(info.st_size) > kMaxPemFileSize) {
    status = InvalidArgumentError(std::string(what) + " " + path + " is larger than 16 MiB");
  } else {
    char buffer[65536];
    while (true) {
      ssize_t n = read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = FileError(errno, what, path);
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (text.size() > kMaxPemFileSize) {
        status = InvalidArgumentError(std::string(what) + " " + path + " is larger than 16 MiB");
        break;
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

Result<std::vector<X509Ptr>> ParseCertificates(std::string_view pem, std::string_view origin) {
  ClearOpenSslErrors();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError(ErrorCode::kInternal, "cannot allocate a memory BIO");
  std::vector<X509Ptr> certificates;
  while (true) {
    X509* certificate = PEM_read_bio_X509_AUX(bio.get(), nullptr, NoPassphrase, nullptr);
    if (certificate == nullptr) {
      if (IsEndOfPemInput()) break;
      return OpenSslError(ErrorCode::kTls, std::string(origin) + ": certificate " +
                                               std::to_string(certificates.size() + 1) +
                                               " is not valid PEM");
    }
    certificates.emplace_back(certificate);
  }
  ClearOpenSslErrors();
  if (certificates.empty()) {
    return TlsError(std::string(origin) +
                    " holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block; "
                    "convert DER files with `openssl x509 -inform der`)");
  }
  return certificates;
}

Result<PkeyPtr> ParsePrivateKey(std::string_view pem, std::string_view origin) {
  ClearOpenSslErrors();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError(ErrorCode::kInternal, "cannot allocate a memory BIO");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr);
  if (key != nullptr) {
    ClearOpenSslErrors();
    return PkeyPtr(key);
  }
  bool encrypted = pem.find("ENCRYPTED") != std::string_view::npos;
  if (encrypted) {
    ClearOpenSslErrors();
    return TlsError(std::string(origin) +
                    " is encrypted; give the key without a passphrase (openssl pkey -in KEY -out "
                    "PLAIN)");
  }
  // OpenSSL 3's decoders report a missing key as "unsupported": look for the
  // block ourselves ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY").
  if (IsEndOfPemInput() || pem.find("PRIVATE KEY-----") == std::string_view::npos) {
    ClearOpenSslErrors();
    return TlsError(std::string(origin) +
                    " holds no PEM private key (expected a -----BEGIN PRIVATE KEY----- block)");
  }
  return OpenSslError(ErrorCode::kTls, std::string(origin) + " is not a valid PEM private key");
}

}  // namespace cdi::tls
