#include "uploadserver/upload_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "tls/tls_config.h"

namespace cdi::uploadserver {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxAnswerBytes = 64 * 1024;
constexpr auto kProgressEvery = std::chrono::milliseconds(100);

// The state a request's callbacks share.
struct Transfer {
  int fd = -1;
  uint64_t end = 0;  // one past the body's last byte
  uint64_t position = 0;
  int read_errno = 0;
  const CancelToken* cancel = nullptr;
  const UploadClient::OnProgress* on_progress = nullptr;
  Clock::time_point last_progress;
};

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel->cancelled()) return CURL_READFUNC_ABORT;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, t->end - t->position));
  if (want == 0) return 0;
  while (true) {
    const ssize_t n = pread(t->fd, buffer, want, static_cast<off_t>(t->position));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      t->read_errno = n < 0 ? errno : EIO;
      return CURL_READFUNC_ABORT;
    }
    t->position += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

size_t KeepAnswer(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<UploadExchange*>(user);
  const size_t n = size * count;
  const size_t room = kMaxAnswerBytes - std::min(kMaxAnswerBytes, exchange->answer.size());
  exchange->answer.append(data, std::min(n, room));
  return n;
}

size_t KeepHeader(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<UploadExchange*>(user);
  const size_t n = size * count;
  std::string line(data, n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name == "upload-offset") {
      try {
        exchange->upload_offset = std::stoull(line.substr(colon + 1));
      } catch (const std::exception&) {
        exchange->upload_offset.reset();
      }
    }
  }
  return n;
}

int ShowProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel->cancelled()) return 1;
  const Clock::time_point now = Clock::now();
  if (t->on_progress != nullptr && *t->on_progress && now - t->last_progress >= kProgressEvery) {
    t->last_progress = now;
    (*t->on_progress)(t->position);
  }
  return 0;
}

struct CurlFree {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// A connection failure that a continuation may cure.
bool Transient(CURLcode code) {
  switch (code) {
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
      return true;
    default:
      return false;
  }
}

std::string HostOf(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  const size_t end = url.find_first_of(":/", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

Result<std::unique_ptr<UploadClient>> UploadClient::Open(UploadClientOptions options,
                                                         const CancelToken& cancel) {
  const std::string scheme = options.url.substr(0, options.url.find("://"));
  if (scheme != "https" && scheme != "http") {
    return InvalidArgumentError("URL '" + options.url +
                                "' is not http(s)://HOST/PATH; an upload server's is "
                                "https://HOST[:PORT]/v1beta1/upload");
  }
  UniqueFd fd(open(options.image.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || fstat(fd.get(), &st) != 0) {
    return IoError("cannot open " + options.image + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    return InvalidArgumentError(options.image + " is not a regular file with data; upload "
                                "sends an image file (its length goes first)");
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(options.tls));
  const auto size = static_cast<uint64_t>(st.st_size);
  return std::unique_ptr<UploadClient>(
      new UploadClient(std::move(options), cancel, std::move(fd), size, std::move(tls)));
}

UploadClient::UploadClient(UploadClientOptions options, const CancelToken& cancel, UniqueFd fd,
                           uint64_t size, std::unique_ptr<tls::CurlTls> tls)
    : options_(std::move(options)),
      cancel_(cancel),
      fd_(std::move(fd)),
      size_(size),
      tls_(std::move(tls)) {}

UploadClient::~UploadClient() = default;

// The image's SHA-256 as RFC 9530's Repr-Digest value: sha-256=:BASE64:.
Result<std::string> UploadClient::ReprDigest() const {
  const int fd = fd_.get();
  const std::string& path = options_.image;
  const CancelToken& cancel = cancel_;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  &EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return InternalError("cannot start a SHA-256 digest");
  }
  std::vector<unsigned char> buffer(1 << 20);
  uint64_t offset = 0;
  while (true) {
    if (cancel.cancelled()) return CancelledError("the upload was cancelled");
    const ssize_t n = pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  std::string encoded(4 * ((length + 2) / 3) + 1, '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()), digest,
                      static_cast<int>(length));
  encoded.resize(static_cast<size_t>(written));
  return "sha-256=:" + encoded + ":";
}

Result<UploadExchange> UploadClient::Send(uint64_t first, const OnProgress& on_progress) {
  return Request(first, &on_progress);
}

Result<UploadExchange> UploadClient::Ask() { return Request(std::nullopt, nullptr); }

Result<UploadExchange> UploadClient::Request(std::optional<uint64_t> first,
                                             const OnProgress* on_progress) {
  std::unique_ptr<CURL, CurlFree> handle(curl_easy_init());
  if (!handle) return InternalError("cannot create a curl handle");
  CURL* h = handle.get();
  UploadExchange exchange;
  Transfer transfer;
  transfer.fd = fd_.get();
  transfer.end = size_;
  transfer.position = first.value_or(0);
  transfer.cancel = &cancel_;
  transfer.on_progress = on_progress;
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_timeout));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &KeepAnswer);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &exchange);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &KeepHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &exchange);
  CDI_RETURN_IF_ERROR(tls_->Apply(h));
  std::unique_ptr<curl_slist, CurlFree> headers;
  auto add = [&](const std::string& line) {
    headers.reset(curl_slist_append(headers.release(), line.c_str()));
  };
  if (!options_.token.empty()) add("Authorization: Bearer " + options_.token);
  if (!first) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    if (*first > 0) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
      add("Content-Range: bytes " + std::to_string(*first) + "-" + std::to_string(size_ - 1) +
          "/" + std::to_string(size_));
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size_ - *first));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &ShowProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
    add("Content-Type: application/octet-stream");
    add("Expect:");
    if (!digest_.empty()) add("Repr-Digest: " + digest_);
  }
  if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  const CURLcode code = curl_easy_perform(h);
  const std::string message = error[0] != '\0' ? error : curl_easy_strerror(code);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &exchange.status);
  exchange.completed = code == CURLE_OK;
  exchange.transient = Transient(code);
  if (!exchange.completed) exchange.failure = message;
  exchange.sent = first ? transfer.position - *first : 0;
  if (transfer.read_errno != 0) {
    return IoError("cannot read " + options_.image + ": " + std::strerror(transfer.read_errno));
  }
  if (code == CURLE_ABORTED_BY_CALLBACK || cancel_.cancelled()) {
    return CancelledError("the upload was cancelled");
  }
  if (tls::CurlTls::IsTlsFailure(code)) {
    return tls_->TranslateFailure(code, message, options_.url, HostOf(options_.url));
  }
  return exchange;
}


}  // namespace cdi::uploadserver
