#include "cmd/cdi-image/upload_command.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cdi/import.h"
#include "cdi/text.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/progress_view.h"
#include "cmd/cli/signals.h"
#include "common/unique_fd.h"
#include "tls/tls_config.h"

namespace cdi::upload {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxAnswerBytes = 64 * 1024;
constexpr auto kProgressEvery = std::chrono::milliseconds(100);
constexpr double kMaxRetryDelay = 30;

// The image's SHA-256 as RFC 9530's Repr-Digest value: sha-256=:BASE64:.
Result<std::string> ReprDigest(int fd, const std::string& path, const CancelToken& cancel) {
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

// What one request did.
struct Exchange {
  CURLcode code = CURLE_OK;
  std::string curl_message;
  long status = 0;  // NOLINT(runtime/int): curl's type
  std::string answer;  // the body, at most kMaxAnswerBytes
  std::optional<uint64_t> upload_offset;
  uint64_t sent = 0;  // body bytes curl took
};

// The state a request's callbacks share.
struct Transfer {
  int fd = -1;
  uint64_t first = 0;  // the image offset the body starts at
  uint64_t end = 0;    // one past its last byte
  uint64_t position = 0;
  int read_errno = 0;
  const CancelToken* cancel = nullptr;
  cli::ProgressView* view = nullptr;
  Clock::time_point started;
  Clock::time_point last_progress;
  Exchange* exchange = nullptr;
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
  auto* exchange = static_cast<Exchange*>(user);
  const size_t n = size * count;
  const size_t room = kMaxAnswerBytes - std::min(kMaxAnswerBytes, exchange->answer.size());
  exchange->answer.append(data, std::min(n, room));
  return n;
}

size_t KeepHeader(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
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

int ShowProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t uploaded) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel->cancelled()) return 1;
  const Clock::time_point now = Clock::now();
  if (t->view != nullptr && now - t->last_progress >= kProgressEvery) {
    t->last_progress = now;
    Progress progress;
    progress.phase = Phase::kTransferring;
    progress.source_bytes = t->first + static_cast<uint64_t>(std::max<curl_off_t>(uploaded, 0));
    progress.source_size = t->end;
    progress.elapsed = now - t->started;
    t->view->Update(progress);
  }
  return 0;
}

struct CurlFree {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

class Uploader {
 public:
  Uploader(const UploadOptions& options, int fd, uint64_t size, std::string digest,
           tls::CurlTls& tls, const CancelToken& cancel, cli::ProgressView* view)
      : options_(options), fd_(fd), size_(size), digest_(std::move(digest)), tls_(tls),
        cancel_(cancel), view_(view), started_(Clock::now()) {}

  // Sends the image from `first` to its end: POST from 0, PATCH from
  // elsewhere. nullopt for HEAD.
  Result<Exchange> Request(std::optional<uint64_t> first) {
    std::unique_ptr<CURL, CurlFree> handle(curl_easy_init());
    if (!handle) return InternalError("cannot create a curl handle");
    CURL* h = handle.get();
    Exchange exchange;
    Transfer transfer;
    transfer.fd = fd_;
    transfer.first = first.value_or(0);
    transfer.end = size_;
    transfer.position = transfer.first;
    transfer.cancel = &cancel_;
    transfer.view = first ? view_ : nullptr;
    transfer.started = started_;
    transfer.exchange = &exchange;
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
    CDI_RETURN_IF_ERROR(tls_.Apply(h));
    std::unique_ptr<curl_slist, CurlFree> headers;
    auto add = [&](const std::string& line) {
      headers.reset(curl_slist_append(headers.release(), line.c_str()));
    };
    if (!token_.empty()) add("Authorization: Bearer " + token_);
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
    exchange.code = curl_easy_perform(h);
    exchange.curl_message = error[0] != '\0' ? error : curl_easy_strerror(exchange.code);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &exchange.status);
    exchange.sent = transfer.position - transfer.first;
    if (transfer.read_errno != 0) {
      return IoError("cannot read " + options_.image + ": " + std::strerror(transfer.read_errno));
    }
    if (exchange.code == CURLE_ABORTED_BY_CALLBACK || cancel_.cancelled()) {
      return CancelledError("the upload was cancelled");
    }
    if (tls::CurlTls::IsTlsFailure(exchange.code)) {
      return tls_.TranslateFailure(exchange.code, exchange.curl_message, options_.url,
                                   HostOf(options_.url));
    }
    return exchange;
  }

  void set_token(std::string token) { token_ = std::move(token); }

 private:
  static std::string HostOf(const std::string& url) {
    size_t start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    const size_t end = url.find_first_of(":/", start);
    return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }

  const UploadOptions& options_;
  const int fd_;
  const uint64_t size_;
  const std::string digest_;
  tls::CurlTls& tls_;
  const CancelToken& cancel_;
  cli::ProgressView* view_;
  const Clock::time_point started_;
  std::string token_;
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

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

// The server's refusal as an error whose code says what to do.
Status Refusal(const Exchange& exchange, const std::string& url) {
  const std::string answer = Trimmed(exchange.answer);
  const std::string text = "the upload server (" + url + ") answered HTTP " +
                           std::to_string(exchange.status) +
                           (answer.empty() ? std::string() : ": " + answer);
  switch (exchange.status) {
    case 400:
      if (answer.find("checksum mismatch") != std::string::npos) {
        return Status(ErrorCode::kChecksumMismatch, text);
      }
      if (answer.find("available storage") != std::string::npos) {
        return Status(ErrorCode::kTooSmall, text + "; a larger volume is needed");
      }
      return InvalidArgumentError(text);
    case 401:
    case 403:
      return InvalidArgumentError(text + "; check --token (CDI's upload proxy) or --client-cert "
                                         "and --client-key (an upload server)");
    case 404:
      return InvalidArgumentError(text + "; the URL's path is /v1beta1/upload (or upload-async)");
    case 409:
      return InvalidArgumentError(text + "; the volume already received its upload");
    default:
      return NetworkError(text);
  }
}

int Report(const Status& status, bool json) {
  const int code = cli::ExitCodeFor(status.code());
  if (json) {
    std::printf("{\"event\":\"error\",\"code\":%s,\"exit_code\":%d,\"message\":%s}\n",
                JsonString(ErrorCodeName(status.code())).c_str(), code,
                JsonString(status.message()).c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return code;
}

cli::ProgressStyle ParseStyle(const std::string& text) {
  if (text == "bar") return cli::ProgressStyle::kBar;
  if (text == "plain") return cli::ProgressStyle::kPlain;
  if (text == "json") return cli::ProgressStyle::kJson;
  if (text == "none") return cli::ProgressStyle::kNone;
  return cli::ProgressStyle::kAuto;
}

Result<std::string> ReadToken(const UploadOptions& options) {
  if (!options.token.empty() && !options.token_file.empty()) {
    return InvalidArgumentError("--token and --token-file: give one of them");
  }
  if (options.token_file.empty()) return options.token;
  std::ifstream in(options.token_file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return InvalidArgumentError("cannot read the token from " + options.token_file);
  }
  return Trimmed(line);
}

}  // namespace

CLI::App* AddUploadCommand(CLI::App* parent, UploadOptions* o) {
  CLI::App* app = parent->add_subcommand(
      "upload",
      "send a local image to an upload server or CDI's upload proxy, which converts it while "
      "it arrives; a dropped connection is continued where the server stands");
  app->add_option("IMAGE", o->image, "local image file, in any format the server decodes")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("URL", o->url,
                  "the upload endpoint: https://HOST[:PORT]/v1beta1/upload (or upload-async)")
      ->required();
  app->add_option("--token", o->token,
                  "upload token of CDI's upload proxy (sent as Authorization: Bearer)")
      ->group("TLS and credentials");
  app->add_option("--token-file", o->token_file, "file holding the upload token (first line)")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--ca-bundle", o->ca_bundles,
                  "PEM file of CA certificates to trust besides the system store (repeatable)")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--client-cert", o->client_cert, "PEM client certificate for mutual TLS")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--client-key", o->client_key, "PEM private key of --client-cert")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_flag("--insecure", o->insecure, "do not verify the server's certificate")
      ->group("TLS and credentials");
  app->add_flag("--no-checksum", o->no_checksum,
                "send no Repr-Digest header (skips reading the image once before sending it)");
  app->add_option("--progress", o->progress, "progress display")
      ->check(CLI::IsMember({"auto", "bar", "plain", "json", "none"}))
      ->capture_default_str();
  app->add_option("--retries", o->retries,
                  "continuations of a dropped connection in a row before giving up; 0: none")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--retry-delay", o->retry_delay,
                  "seconds before the first continuation, doubled for each next one (at most 30)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--connect-timeout", o->connect_timeout, "seconds to wait for a connection")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--stall-timeout", o->stall_timeout,
                  "seconds without progress (sending, or waiting for the answer) after which "
                  "the connection counts as dropped")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group("Network");
  return app;
}

int RunUpload(const UploadOptions& options) {
  const cli::ProgressStyle style =
      options.quiet ? cli::ProgressStyle::kNone : ParseStyle(options.progress);
  const bool json = style == cli::ProgressStyle::kJson;
  if (options.client_cert.empty() != options.client_key.empty()) {
    return Report(InvalidArgumentError("--client-cert and --client-key go together; give both"),
                  json);
  }
  const std::string scheme = options.url.substr(0, options.url.find("://"));
  if (scheme != "https" && scheme != "http") {
    return Report(InvalidArgumentError("URL '" + options.url +
                                       "' is not http(s)://HOST/PATH; an upload server's is "
                                       "https://HOST[:PORT]/v1beta1/upload"),
                  json);
  }
  Result<std::string> token = ReadToken(options);
  if (!token.ok()) return Report(token.status(), json);
  UniqueFd fd(open(options.image.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || fstat(fd.get(), &st) != 0) {
    return Report(IoError("cannot open " + options.image + ": " + std::strerror(errno)), json);
  }
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    return Report(InvalidArgumentError(options.image + " is not a regular file with data; upload "
                                       "sends an image file (its length goes first)"),
                  json);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  static CancelToken cancel;
  cli::CancelOnSignals(&cancel);
  std::string digest;
  if (!options.no_checksum) {
    Result<std::string> computed = ReprDigest(fd.get(), options.image, cancel);
    if (!computed.ok()) return Report(computed.status(), json);
    digest = *computed;
    spdlog::info("Repr-Digest: {}", digest);
  }
  TlsSettings settings;
  settings.verify = options.insecure ? TlsVerify::kOff : TlsVerify::kOn;
  settings.ca_files = options.ca_bundles;
  settings.client_cert_file = options.client_cert;
  settings.client_key_file = options.client_key;
  Result<std::unique_ptr<tls::CurlTls>> tls = tls::CurlTls::Create(settings);
  if (!tls.ok()) return Report(tls.status(), json);

  cli::ProgressView view(style, stderr, stdout);
  Uploader uploader(options, fd.get(), size, digest, **tls, cancel, &view);
  uploader.set_token(*token);
  const Clock::time_point started = Clock::now();
  uint64_t offset = 0;
  int failures = 0;
  int continuations = 0;
  std::optional<Status> failed;
  bool lost_answer = false;
  while (!failed) {
    Result<Exchange> sent = uploader.Request(offset);
    if (!sent.ok()) {
      failed = sent.status();
      break;
    }
    if (sent->code == CURLE_OK && sent->status == 200) break;
    if (sent->code == CURLE_OK && sent->status != 204 && sent->status != 416) {
      failed = Refusal(*sent, options.url);
      break;
    }
    if (sent->code != CURLE_OK && !Transient(sent->code)) {
      failed = NetworkError("the upload to " + options.url + " failed: " + sent->curl_message);
      break;
    }
    // 204: the server took a part and waits for the rest. Otherwise the
    // connection dropped, or the server stands elsewhere (416): ask it.
    if (sent->code == CURLE_OK && sent->status == 204 && sent->upload_offset) {
      offset = *sent->upload_offset;
      continue;
    }
    if (sent->sent > 0 && sent->code != CURLE_OK) failures = 0;  // it moved on
    if (++failures > options.retries) {
      failed = NetworkError("the upload to " + options.url + " failed " +
                            std::to_string(failures) + " times in a row; the last: " +
                            (sent->code != CURLE_OK ? sent->curl_message
                                                    : "HTTP " + std::to_string(sent->status) +
                                                          " " + Trimmed(sent->answer)));
      break;
    }
    const double delay =
        std::min(kMaxRetryDelay, options.retry_delay * static_cast<double>(1 << std::min(failures - 1, 5)));
    spdlog::warn("the upload stopped after {} bytes ({}); asking the server where it stands in "
                 "{:.1f} s",
                 offset + sent->sent,
                 sent->code != CURLE_OK ? sent->curl_message
                                        : "HTTP " + std::to_string(sent->status),
                 delay);
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(delay * 1000));
    while (Clock::now() < until && !cancel.cancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Result<Exchange> where = uploader.Request(std::nullopt);
    if (!where.ok()) {
      failed = where.status();
      break;
    }
    if (where->code != CURLE_OK || where->status != 200) {
      offset = 0;  // not reachable now: the next try tells
      continue;
    }
    // A server that cannot continue an upload says no offset: start over.
    offset = where->upload_offset.value_or(0);
    if (offset >= size) {
      // Every byte arrived; the answer to the last one did not.
      lost_answer = true;
      break;
    }
    ++continuations;
    spdlog::warn("the server has {} of {} bytes: {}", offset, size,
                 offset > 0 ? "sending the rest" : "sending the image again from its start");
  }
  if (!failed) {
    Progress done;
    done.phase = Phase::kTransferring;
    done.source_bytes = size;
    done.source_size = size;
    done.elapsed = Clock::now() - started;
    view.Update(done);
  }
  view.Finish();
  if (failed) return Report(*failed, json);
  if (lost_answer) {
    spdlog::warn("the server received all {} bytes, and its answer was lost with the connection: "
                 "check the volume's upload status (CDI: the PVC's upload phase)",
                 size);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (json) {
    std::printf("{\"event\":\"result\",\"image\":%s,\"bytes\":%llu,\"continuations\":%d,"
                "\"checksum\":%s,\"elapsed_seconds\":%.3f}\n",
                JsonString(options.image).c_str(), static_cast<unsigned long long>(size),
                continuations, JsonString(digest).c_str(), seconds);
  } else if (!options.quiet) {
    std::printf("Uploaded %s (%s) in %s%s\n", options.image.c_str(), HumanBytes(size).c_str(),
                HumanDuration(seconds).c_str(),
                continuations > 0
                    ? (", continued " + std::to_string(continuations) + " time(s)").c_str()
                    : "");
  }
  std::fflush(stdout);
  return cli::kExitOk;
}

}  // namespace cdi::upload
