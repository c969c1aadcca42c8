// Status and Result: how every fallible call in the library reports failure.
//
// The library throws nothing across its API. A Status carries a stable code from
// a small domain set, a message written for the person who has to act on it, and
// a retryable flag (true when the same call may succeed if tried again later).
// Messages grow context as they climb: Annotate("reading L2 table at 0x50000")
// turns "short read" into "reading L2 table at 0x50000: short read".
//
// Header-only on purpose: every module (formats, pvc, tls, importer) uses it
// without depending on another module's library.
#ifndef CDI_STATUS_H_
#define CDI_STATUS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cdi {

// Stable codes. Values are part of the API: never renumber, only append.
enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 1,   // a bad spec, flag, URL or quantity; a target that already exists
  kUnsupported = 2,       // recognised but not handled: a format, a feature, a URL scheme
  kCorruptImage = 3,      // the image's bytes break the rules of their format
  kNetwork = 4,           // connect, DNS, HTTP status, short body, stall, redirect policy
  kTls = 5,               // certificate verification, handshake, client certificate
  kTooSmall = 6,          // the image does not fit: virtual size, decompressed size, ENOSPC, EDQUOT
  kIo = 7,                // reading a local source or writing/flushing the target failed
  kChecksumMismatch = 8,  // the bytes as served do not match the expected digest
  kCancelled = 9,         // the caller cancelled (signal, cancel token)
  kInternal = 10,         // a bug: an invariant of the library itself was broken
};

// A short, stable, lower-case name for a code ("invalid-argument", "too-small", ...).
constexpr std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kCorruptImage: return "corrupt-image";
    case ErrorCode::kNetwork: return "network";
    case ErrorCode::kTls: return "tls";
    case ErrorCode::kTooSmall: return "too-small";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kChecksumMismatch: return "checksum-mismatch";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

enum class Retryable : bool { kNo = false, kYes = true };

class [[nodiscard]] Status {
 public:
  // Success.
  Status() = default;
  Status(ErrorCode code, std::string message, Retryable retryable = Retryable::kNo)
      : code_(code), retryable_(retryable), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  bool retryable() const { return retryable_ == Retryable::kYes; }
  const std::string& message() const { return message_; }

  // "context: message". Success stays success.
  Status Annotate(std::string_view context) const {
    if (ok()) return *this;
    std::string annotated(context);
    annotated += ": ";
    annotated += message_;
    return Status(code_, std::move(annotated), retryable_);
  }

  // "[code] message", for logs and tests.
  std::string ToString() const {
    if (ok()) return "ok";
    std::string text = "[";
    text += ErrorCodeName(code_);
    text += "] ";
    text += message_;
    return text;
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  Retryable retryable_ = Retryable::kNo;
  std::string message_;
};

inline Status InvalidArgumentError(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}
inline Status UnsupportedError(std::string message) {
  return Status(ErrorCode::kUnsupported, std::move(message));
}
inline Status CorruptImageError(std::string message) {
  return Status(ErrorCode::kCorruptImage, std::move(message));
}
inline Status NetworkError(std::string message, Retryable retryable = Retryable::kNo) {
  return Status(ErrorCode::kNetwork, std::move(message), retryable);
}
inline Status TlsError(std::string message) { return Status(ErrorCode::kTls, std::move(message)); }
inline Status TooSmallError(std::string message) {
  return Status(ErrorCode::kTooSmall, std::move(message));
}
inline Status IoError(std::string message, Retryable retryable = Retryable::kNo) {
  return Status(ErrorCode::kIo, std::move(message), retryable);
}
inline Status ChecksumMismatchError(std::string message) {
  return Status(ErrorCode::kChecksumMismatch, std::move(message));
}
inline Status CancelledError(std::string message = "cancelled") {
  return Status(ErrorCode::kCancelled, std::move(message));
}
inline Status InternalError(std::string message) {
  return Status(ErrorCode::kInternal, std::move(message));
}

// A value or the Status that explains why there is none; shaped like std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) {
      data_ = Status(ErrorCode::kInternal, "Result constructed from an ok Status without a value");
    }
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  // Precondition: ok().
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(data_); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace cdi

// Returns from the enclosing function when `expr` (a Status) is not ok.
#define CDI_RETURN_IF_ERROR(expr)                \
  do {                                           \
    ::cdi::Status cdi_status_ = (expr);          \
    if (!cdi_status_.ok()) return cdi_status_;   \
  } while (false)

#define CDI_CONCAT_INNER_(a, b) a##b
#define CDI_CONCAT_(a, b) CDI_CONCAT_INNER_(a, b)

// `CDI_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define CDI_ASSIGN_OR_RETURN(lhs, expr) \
  CDI_ASSIGN_OR_RETURN_IMPL_(CDI_CONCAT_(cdi_result_, __LINE__), lhs, expr)
#define CDI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // CDI_STATUS_H_
