// The registry client: the small requests of the distribution API (ping,
// token, manifests, configuration) run here on one curl handle, bodies kept
// in memory up to kMaxManifestBytes; layer blobs stream through the HTTP
// source (sources/http/), which brings resume, retries and stall detection.
#include "sources/registry/registry_client.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "sources/http/curl_failure.h"
#include "sources/http/curl_handles.h"
#include "sources/http/http_response.h"
#include "sources/http/http_source.h"
#include "sources/http/proxy.h"
#include "sources/http/retry_policy.h"
#include "sources/registry/challenge.h"
#include "sources/registry/digest.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer::registry {
namespace {

using Clock = std::chrono::steady_clock;

// One answer to a small request.
struct Response {
  ResponseHeaders headers;
  std::vector<std::string> challenges;  // WWW-Authenticate values
  std::string content_type;
  std::string docker_content_digest;
  std::vector<uint8_t> body;
  HttpUrl url;  // the URL that answered (after redirects)
};

// The registry's own words for a refusal: errors[0].code and .message of its
// JSON error body ("MANIFEST_UNKNOWN: manifest unknown"); "" when it has none.
std::string RegistryErrorText(const std::vector<uint8_t>& body) {
  nlohmann::json document =
      nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) return "";
  auto errors = document.find("errors");
  if (errors == document.end() || !errors->is_array() || errors->empty()) return "";
  const nlohmann::json& first = (*errors)[0];
  if (!first.is_object()) return "";
  std::string text;
  if (auto code = first.find("code"); code != first.end() && code->is_string()) {
    text = code->get<std::string>();
  }
  if (auto message = first.find("message"); message != first.end() && message->is_string()) {
    text += (text.empty() ? "" : ": ") + message->get<std::string>();
  }
  // A registry's text, not ours: keep it short and printable.
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

std::string HeaderValue(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return "";
  if (AsciiLower(line.substr(0, name.size())) != name) return "";
  return std::string(TrimSpace(line.substr(name.size() + 1)));
}

}  // namespace

class RegistryClient::Impl {
 public:
  Impl(const SourceSpec& spec, ImageReference reference, std::unique_ptr<tls::CurlTls> tls,
       ProxyConfig proxies, const CancelToken* cancel)
      : spec_(spec),
        reference_(std::move(reference)),
        tls_(std::move(tls)),
        proxies_(std::move(proxies)),
        cancel_(cancel) {}

  Status Configure() {
    CurlHandles::Callbacks callbacks{&Impl::OnHeader, &Impl::OnBody, static_cast<void*>(this)};
    CDI_RETURN_IF_ERROR(handles_.Configure(spec_.network, callbacks, *tls_));
    CURL* easy = handles_.easy();
    // Small requests: cancellation and stalls are watched through curl's
    // progress callback and low-speed limit.
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &Impl::OnProgress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, static_cast<void*>(this));
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(spec_.network.stall_bytes_per_second));  // NOLINT
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(spec_.network.stall_window.count()));  // NOLINT
    return Status::Ok();
  }

  // Finds the scheme the registry speaks and what authentication it wants.
  Status Ping() {
    base_url_ = "https://" + reference_.registry;
    Result<Response> ping = Send(base_url_ + "/v2/", {}, /*with_credentials=*/true);
    if (!ping.ok() && spec_.registry.insecure && ping.status().code() != ErrorCode::kCancelled) {
      Logger()->warn(
          "{} does not answer over HTTPS ({}); it is an insecure registry: trying "
          "plain HTTP",
          reference_.registry, ping.status().message());
      base_url_ = "http://" + reference_.registry;
      ping = Send(base_url_ + "/v2/", {}, /*with_credentials=*/true);
    }
    if (!ping.ok()) {
      return ping.status().Annotate("cannot reach the registry " + reference_.registry);
    }
    if (ping->headers.status == 401) {
      CDI_RETURN_IF_ERROR(Authenticate(*ping));
    } else if (ping->headers.status != 200) {
      // Some registries answer /v2/ with 404 or 403 and still serve images;
      // what matters is that HTTP was spoken.
      Logger()->debug("{}/v2/ answered HTTP {}", base_url_, ping->headers.status);
    }
    Logger()->debug(
        "registry {} speaks {}{}", reference_.registry, base_url_.substr(0, base_url_.find(':')),
        authorization_.empty() ? (basic_ ? " with Basic auth" : "") : " with a Bearer token");
    return Status::Ok();
  }

  Result<Response> GetManifest(const std::string& reference) {
    const std::string url = base_url_ + "/v2/" + reference_.repository + "/manifests/" + reference;
    CDI_ASSIGN_OR_RETURN(Response response,
                         Fetch(url, {"Accept: " + std::string(kManifestAccept)}, "manifest"));
    if (response.headers.status == 404) {
      std::string registry_text = RegistryErrorText(response.body);
      return NetworkError("the registry has no manifest '" + reference + "' in " +
                          reference_.repository + " (" + reference_.Describe() + ": HTTP 404" +
                          (registry_text.empty() ? "" : ", " + registry_text) +
                          "); check the image name and tag");
    }
    CDI_RETURN_IF_ERROR(Accept(response, "the manifest " + reference));
    // A digest names the bytes; for a tag, the registry's announced digest
    // is checked when it sends one.
    std::string expected =
        reference.find(':') != std::string::npos ? reference : response.docker_content_digest;
    if (!expected.empty()) {
      if (Status valid = CheckDigest(expected); !valid.ok()) {
        return CorruptImageError("the registry announced a malformed manifest digest for " +
                                 reference_.Describe() + ": " + valid.message());
      }
      CDI_ASSIGN_OR_RETURN(DigestHasher hasher, DigestHasher::For(expected));
      hasher.Update(response.body);
      CDI_RETURN_IF_ERROR(hasher.Verify("manifest " + reference + " of " + reference_.Describe()));
    }
    return response;
  }

  Result<std::vector<uint8_t>> GetSmallBlob(const Descriptor& blob, std::string_view what) {
    if (blob.size > kMaxManifestBytes) {
      return UnsupportedError("the " + std::string(what) + " " + blob.digest + " of " +
                              reference_.Describe() + " is " + std::to_string(blob.size) +
                              " bytes, more than the " + std::to_string(kMaxManifestBytes) +
                              " read");
    }
    const std::string url = base_url_ + "/v2/" + reference_.repository + "/blobs/" + blob.digest;
    CDI_ASSIGN_OR_RETURN(Response response, Fetch(url, {}, std::string(what)));
    CDI_RETURN_IF_ERROR(Accept(response, "the " + std::string(what) + " " + blob.digest));
    CDI_ASSIGN_OR_RETURN(DigestHasher hasher, DigestHasher::For(blob.digest));
    hasher.Update(response.body);
    CDI_RETURN_IF_ERROR(hasher.Verify(std::string(what) + " of " + reference_.Describe()));
    return std::move(response.body);
  }

  // The settings of a blob download through the HTTP source: the blob's URL,
  // the credentials for the registry's origin only.
  SourceSpec BlobSpec(const Descriptor& blob) const {
    SourceSpec spec = spec_;
    spec.url = base_url_ + "/v2/" + reference_.repository + "/blobs/" + blob.digest;
    spec.auth = HttpAuth();
    if (!authorization_.empty()) {
      spec.auth.headers.push_back("Authorization: " + authorization_);
    } else if (basic_) {
      spec.auth.user = spec_.auth.user;
      spec.auth.password = spec_.auth.password;
    }
    return spec;
  }

  // Before a blob request: a token past three quarters of its lifetime is
  // replaced, so that a layer opened late in a long import is not refused.
  Status RefreshTokenIfOld() {
    if (!bearer_challenge_ || Clock::now() - token_time_ < token_lifetime_ * 3 / 4) {
      return Status::Ok();
    }
    Logger()->debug(
        "the registry token is {} s old: getting a new one",
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - token_time_).count());
    const Challenge challenge = *bearer_challenge_;
    return FetchToken(challenge);
  }

  const ImageReference& reference() const { return reference_; }
  const CancelToken* cancel() const { return cancel_; }
  const std::string& spec_architecture() const { return spec_.registry.architecture; }

 private:
  bool Cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  // A request that answered, with authentication done on a 401 once.
  Result<Response> Fetch(const std::string& url, std::vector<std::string> headers,
                         std::string_view what) {
    CDI_ASSIGN_OR_RETURN(Response response, Send(url, headers, true));
    if (response.headers.status == 401 && !response.challenges.empty()) {
      CDI_RETURN_IF_ERROR(Authenticate(response));
      CDI_ASSIGN_OR_RETURN(response, Send(url, headers, true));
    }
    if (response.headers.status == 401 || response.headers.status == 403) {
      std::string registry_text = RegistryErrorText(response.body);
      const bool have_credentials = !spec_.auth.user.empty();
      return NetworkError(
          "the registry refused access to the " + std::string(what) + " of " +
          reference_.Describe() + " (HTTP " + std::to_string(response.headers.status) +
          (registry_text.empty() ? "" : ", " + registry_text) + "): " +
          (have_credentials
               ? "the credentials given are wrong or lack pull access to " + reference_.repository
               : "it needs credentials: give them (IMPORTER_ACCESS_KEY_ID and IMPORTER_SECRET_KEY "
                 "from the DataVolume's secretRef, or --user and --password-file)"));
    }
    return response;
  }

  // 2xx or an error naming the status.
  Status Accept(const Response& response, const std::string& what) const {
    const int status = response.headers.status;
    if (status >= 200 && status < 300) return Status::Ok();
    std::string registry_text = RegistryErrorText(response.body);
    Status refused = HttpStatusError(response.headers, response.url, nullptr);
    return Status(refused.code(),
                  what + " of " + reference_.Describe() + ": " + refused.message() +
                      (registry_text.empty() ? "" : " (" + registry_text + ")"),
                  refused.retryable() ? Retryable::kYes : Retryable::kNo);
  }

  // Gets a token (Bearer) or turns Basic auth on, as the 401 answer asks.
  Status Authenticate(const Response& refusal) {
    std::optional<Challenge> bearer, basic;
    for (const std::string& value : refusal.challenges) {
      for (Challenge& challenge : ParseChallenges(value)) {
        if (challenge.scheme == "bearer" && !bearer) bearer = std::move(challenge);
        if (challenge.scheme == "basic" && !basic) basic = std::move(challenge);
      }
    }
    const bool have_credentials = !spec_.auth.user.empty();
    if (bearer) return FetchToken(*bearer);
    if (basic) {
      if (!have_credentials) {
        return NetworkError("the registry " + reference_.registry +
                            " asks for credentials (Basic authentication): give them "
                            "(IMPORTER_ACCESS_KEY_ID and IMPORTER_SECRET_KEY from the "
                            "DataVolume's secretRef, or --user and --password-file)");
      }
      if (basic_) {
        return NetworkError("the registry " + reference_.registry +
                            " refused the credentials given (Basic authentication, user '" +
                            spec_.auth.user + "')");
      }
      basic_ = true;
      return Status::Ok();
    }
    std::string schemes;
    for (const std::string& value : refusal.challenges) {
      for (const Challenge& challenge : ParseChallenges(value)) {
        schemes += (schemes.empty() ? "" : ", ") + challenge.scheme;
      }
    }
    return UnsupportedError("the registry " + reference_.registry +
                            " asks for authentication this importer does not speak (" +
                            (schemes.empty() ? "no scheme" : schemes) + "); Basic and Bearer are");
  }

  Status FetchToken(const Challenge& challenge) {
    auto param = [&](const char* name) {
      auto it = challenge.params.find(name);
      return it == challenge.params.end() ? std::string() : it->second;
    };
    const std::string realm = param("realm");
    if (realm.empty()) {
      return NetworkError("the registry " + reference_.registry +
                          " asks for a Bearer token without naming its realm (where to get it)");
    }
    std::string scope = param("scope");
    if (scope.empty()) scope = "repository:" + reference_.repository + ":pull";
    Result<HttpUrl> realm_url = ParseHttpUrl(realm);
    if (!realm_url.ok()) {
      return NetworkError("the registry " + reference_.registry +
                          " names an unusable token realm: " + realm_url.status().message());
    }
    const bool have_credentials = !spec_.auth.user.empty();
    if (have_credentials && realm_url->origin.scheme == "http" &&
        base_url_.starts_with("https://")) {
      return NetworkError("the registry " + reference_.registry +
                          " sends credentials' token "
                          "requests to a plain-HTTP realm (" +
                          realm_url->redacted +
                          "): refused, the credentials would travel unencrypted");
    }
    const std::string url = TokenRequestUrl(realm, param("service"), scope);
    // The realm is where the credentials are meant to go: they are sent to
    // its origin (Send's `with_credentials` follows the URL asked for).
    token_request_ = true;
    Result<Response> answer = Send(url, {}, have_credentials);
    token_request_ = false;
    if (!answer.ok())
      return answer.status().Annotate("cannot get a token from " + realm_url->redacted);
    if (answer->headers.status == 401 || answer->headers.status == 403) {
      return NetworkError(
          "the token server " + realm_url->redacted + " refused " +
          (have_credentials ? "the credentials given (user '" + spec_.auth.user + "')"
                            : std::string("anonymous access: the image needs credentials")) +
          " for " + scope + " (HTTP " + std::to_string(answer->headers.status) + ")");
    }
    CDI_RETURN_IF_ERROR(Accept(*answer, "the token for " + scope));
    nlohmann::json document = nlohmann::json::parse(answer->body.begin(), answer->body.end(),
                                                    nullptr, /*allow_exceptions=*/false);
    std::string token;
    if (document.is_object()) {
      for (const char* name : {"token", "access_token"}) {
        auto it = document.find(name);
        if (it != document.end() && it->is_string() && !it->get<std::string>().empty()) {
          token = it->get<std::string>();
          break;
        }
      }
    }
    if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
      return NetworkError("the token server " + realm_url->redacted +
                          " answered without a usable token (a JSON object with 'token')");
    }
    authorization_ = "Bearer " + token;
    // The distribution spec's default lifetime is 60 s when none is given.
    token_lifetime_ = std::chrono::seconds(60);
    if (document.is_object()) {
      auto expires = document.find("expires_in");
      if (expires != document.end() && expires->is_number_integer() &&
          expires->get<int64_t>() > 0) {
        token_lifetime_ = std::chrono::seconds(expires->get<int64_t>());
      }
    }
    token_time_ = Clock::now();
    bearer_challenge_ = challenge;
    Logger()->debug("got a Bearer token for {} from {}", scope, realm_url->redacted);
    return Status::Ok();
  }

  // One request with its redirects, retried while failures are transient.
  // Credentials (Basic or the token) go to the origin of `url` only.
  Result<Response> Send(const std::string& url, const std::vector<std::string>& headers,
                        bool with_credentials) {
    RetryBudget budget(spec_.network);
    while (true) {
      Result<Response> response = SendOnce(url, headers, with_credentials);
      Status failure = response.ok() ? Status::Ok() : response.status();
      if (response.ok() && RetryableStatus(response->headers.status) == Retryable::kYes) {
        failure = HttpStatusError(response->headers, response->url, nullptr);
      }
      if (failure.ok()) return response;
      if (!failure.retryable() || failure.code() == ErrorCode::kCancelled) {
        return response.ok() ? Result<Response>(std::move(response)) : Result<Response>(failure);
      }
      Result<RetryBudget::Wait> wait = budget.Next(failure, std::nullopt, Clock::now());
      if (!wait.ok()) return wait.status();
      Logger()->warn("{}; retry {} of {}", failure.message(), wait->retry,
                     spec_.network.max_retries);
      const auto deadline = Clock::now() + wait->delay;
      while (Clock::now() < deadline) {
        if (Cancelled()) return CancelledError("cancelled while reading " + reference_.Describe());
        std::this_thread::sleep_for(
            std::min<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(100)));
      }
    }
  }

  Result<Response> SendOnce(const std::string& url, const std::vector<std::string>& headers,
                            bool with_credentials) {
    CDI_ASSIGN_OR_RETURN(HttpUrl first, ParseHttpUrl(url));
    HttpUrl request = first;
    for (int redirects = 0;; ++redirects) {
      Credentials credentials;
      credentials.headers = headers;
      if (with_credentials && SameOrigin(request.origin, first.origin)) {
        if (!authorization_.empty() && !token_request_) {
          credentials.headers.push_back("Authorization: " + authorization_);
        } else if ((basic_ || token_request_) && !spec_.auth.user.empty()) {
          credentials.user = spec_.auth.user;
          credentials.password = spec_.auth.password;
        }
      }
      std::optional<Proxy> proxy = ProxyFor(proxies_, request.origin);
      RequestOptions options;
      options.url = &request;
      options.proxy = proxy ? &*proxy : nullptr;
      options.credentials = &credentials;
      CDI_RETURN_IF_ERROR(handles_.Prepare(options));
      response_ = Response();
      response_.url = request;
      body_too_large_ = false;
      tls_->ResetHandshakeFacts();
      Logger()->debug("GET {}", request.redacted);
      CURLcode code = curl_easy_perform(handles_.easy());
      if (body_too_large_) {
        return UnsupportedError("the answer of " + request.redacted + " is larger than the " +
                                std::to_string(kMaxManifestBytes) + " bytes read");
      }
      if (code != CURLE_OK) {
        if (Cancelled()) return CancelledError("cancelled while reading " + reference_.Describe());
        CurlFailureFacts facts;
        facts.code = code;
        facts.curl_message = handles_.error_message();
        facts.os_errno = handles_.os_errno();
        facts.connect_code = handles_.connect_code();
        facts.response_status = response_.headers.status;
        facts.in_headers = response_.headers.status == 0;
        facts.progress = {response_.body.size(), std::nullopt};
        CurlFailureContext context{
            .request = request,
            .proxy = proxy ? &*proxy : nullptr,
            .network = spec_.network,
            .tls = *tls_,
            .check_host_name =
                [this](const std::string& host) {
                  return CheckHostName(host, [this] { return Cancelled(); });
                },
        };
        return CurlFailure(facts, context);
      }
      if (IsRedirectStatus(response_.headers.status) && !response_.headers.location.empty()) {
        if (redirects >= spec_.network.max_redirects) {
          return NetworkError("too many redirects: stopped after " + std::to_string(redirects) +
                              " starting at " + first.redacted);
        }
        CDI_ASSIGN_OR_RETURN(std::string target,
                             ResolveRedirect(request.request_url, response_.headers.location));
        CDI_ASSIGN_OR_RETURN(request, ParseHttpUrl(target));
        continue;
      }
      return std::move(response_);
    }
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<Impl*>(self_pointer);
    const size_t length = size * count;
    std::string_view line = TrimSpace(std::string_view(data, length));
    if (line.empty()) return length;
    const bool status_line = line.starts_with("HTTP/");
    ParseHeaderLine(line, &self->response_.headers);
    if (status_line) {
      // A new response (after a 100 Continue or on a redirect): forget the last one's.
      self->response_.challenges.clear();
      self->response_.content_type.clear();
      self->response_.docker_content_digest.clear();
      self->response_.body.clear();
      return length;
    }
    if (std::string value = HeaderValue(line, "www-authenticate"); !value.empty()) {
      self->response_.challenges.push_back(std::move(value));
    } else if (std::string type = HeaderValue(line, "content-type"); !type.empty()) {
      self->response_.content_type = std::move(type);
    } else if (std::string digest = HeaderValue(line, "docker-content-digest"); !digest.empty()) {
      self->response_.docker_content_digest = std::move(digest);
    }
    return length;
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<Impl*>(self_pointer);
    const size_t length = size * count;
    // A redirect's body is not kept.
    if (IsRedirectStatus(self->response_.headers.status)) return length;
    if (self->response_.body.size() + length > kMaxManifestBytes) {
      self->body_too_large_ = true;
      return 0;
    }
    self->response_.body.insert(self->response_.body.end(), data, data + length);
    return length;
  }

  static int OnProgress(void* self_pointer, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<Impl*>(self_pointer)->Cancelled() ? 1 : 0;
  }

  const SourceSpec spec_;
  const ImageReference reference_;
  const std::unique_ptr<tls::CurlTls> tls_;
  const ProxyConfig proxies_;
  const CancelToken* const cancel_;
  CurlHandles handles_;
  std::string base_url_;        // "https://registry" or "http://registry"
  std::string authorization_;   // "Bearer <token>" once one was issued
  bool basic_ = false;          // the registry asked for Basic auth
  bool token_request_ = false;  // a token request is under way: Basic credentials, no token
  std::optional<Challenge> bearer_challenge_;  // what the last token was asked for with
  Clock::time_point token_time_;
  std::chrono::seconds token_lifetime_{60};
  Response response_;  // of the request under way
  bool body_too_large_ = false;
};

namespace {

// A blob as it streams: counted and hashed, checked at its end.
class VerifiedBlob final : public ByteSource {
 public:
  VerifiedBlob(std::unique_ptr<ByteSource> inner, Descriptor blob, DigestHasher hasher,
               std::string what)
      : inner_(std::move(inner)),
        blob_(std::move(blob)),
        hasher_(std::move(hasher)),
        what_(std::move(what)) {}

  Result<size_t> Read(std::span<uint8_t> buffer) override {
    CDI_ASSIGN_OR_RETURN(size_t n, inner_->Read(buffer));
    CDI_RETURN_IF_ERROR(Account(std::span<const uint8_t>(buffer.data(), n)));
    return n;
  }

  Result<std::span<const uint8_t>> ReadView(size_t max) override {
    CDI_ASSIGN_OR_RETURN(std::span<const uint8_t> view, inner_->ReadView(max));
    CDI_RETURN_IF_ERROR(Account(view));
    return view;
  }

  std::optional<uint64_t> size() const override { return blob_.size; }
  std::string Describe() const override { return what_; }

 private:
  Status Account(std::span<const uint8_t> bytes) {
    if (bytes.empty()) {
      if (hasher_.bytes() != blob_.size) {
        return CorruptImageError("the " + what_ + " ended after " +
                                 std::to_string(hasher_.bytes()) +
                                 " bytes; the manifest says it has " + std::to_string(blob_.size));
      }
      return hasher_.Verify(what_);
    }
    if (hasher_.bytes() + bytes.size() > blob_.size) {
      return CorruptImageError("the registry sent more than the " + std::to_string(blob_.size) +
                               " bytes the manifest gives the " + what_ +
                               "; nothing of it is used");
    }
    hasher_.Update(bytes);
    return Status::Ok();
  }

  std::unique_ptr<ByteSource> inner_;
  Descriptor blob_;
  DigestHasher hasher_;
  std::string what_;
};

}  // namespace

RegistryClient::RegistryClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::Connect(const SourceSpec& spec,
                                                                const CancelToken* cancel) {
  InitCurlOnce();
  CDI_ASSIGN_OR_RETURN(ImageReference reference, ParseImageReference(spec.url));
  CDI_ASSIGN_OR_RETURN(ProxyConfig proxies, ResolveProxyConfig(spec.network.proxy));
  if (spec.network.max_retries < 0) {
    return InvalidArgumentError("the number of retries must not be negative");
  }
  SourceSpec settings = spec;
  if (settings.registry.insecure) settings.tls.verify = TlsVerify::kOff;
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(settings.tls));
  auto impl = std::make_unique<Impl>(settings, std::move(reference), std::move(tls),
                                     std::move(proxies), cancel);
  CDI_RETURN_IF_ERROR(impl->Configure());
  CDI_RETURN_IF_ERROR(impl->Ping());
  return std::unique_ptr<RegistryClient>(new RegistryClient(std::move(impl)));
}

Result<std::string> RegistryClient::TopManifestDigest() {
  const ImageReference& ref = impl_->reference();
  if (!ref.digest.empty()) return ref.digest;
  CDI_ASSIGN_OR_RETURN(Response response, impl_->GetManifest(ref.tag));
  return Sha256Digest(response.body);
}

Result<RegistryImage> RegistryClient::ResolveImage() {
  const ImageReference& ref = impl_->reference();
  RegistryImage image;
  image.reference = ref;
  CDI_ASSIGN_OR_RETURN(Response top, impl_->GetManifest(ref.manifest_reference()));
  image.top_digest = ref.digest.empty() ? Sha256Digest(top.body) : ref.digest;
  image.manifest_digest = image.top_digest;
  CDI_ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(top.body, top.content_type));
  const std::string& wanted = impl_->spec_architecture();
  if (manifest.kind == Manifest::Kind::kIndex) {
    const std::string architecture = wanted.empty() ? MachineArchitecture() : wanted;
    Result<Descriptor> chosen_entry = ChoosePlatform(manifest, architecture);
    if (!chosen_entry.ok()) return chosen_entry.status().Annotate(Describe());
    Descriptor entry = *std::move(chosen_entry);
    Logger()->info("{} is a multi-architecture image: using its {} image {}", Describe(),
                   entry.platform.Describe(), entry.digest);
    CDI_ASSIGN_OR_RETURN(Response chosen, impl_->GetManifest(entry.digest));
    CDI_ASSIGN_OR_RETURN(manifest, ParseManifest(chosen.body, chosen.content_type));
    if (manifest.kind != Manifest::Kind::kImage) {
      return UnsupportedError("the " + entry.platform.Describe() + " entry of " + Describe() +
                              " is an index again, not an image manifest");
    }
    image.manifest_digest = entry.digest;
    image.platform = entry.platform;
  }
  image.layers = manifest.layers;
  for (const Descriptor& layer : image.layers) image.layer_bytes += layer.size;
  CDI_ASSIGN_OR_RETURN(std::vector<uint8_t> config,
                       impl_->GetSmallBlob(manifest.config, "image configuration"));
  CDI_ASSIGN_OR_RETURN(image.config, ParseImageConfig(config));
  if (!wanted.empty() && image.platform.architecture.empty() &&
      image.config.architecture != wanted) {
    return InvalidArgumentError("Error validating architecture: manifest image architecture: \"" +
                                image.config.architecture +
                                "\" doesn't match requested architecture: \"" + wanted + "\" (" +
                                Describe() + ")");
  }
  for (const auto& [name, value] : image.config.labels) {
    if ((name == "containers.bootc" || name == "ostree.bootable") && value == "1") {
      return UnsupportedError(
          "bootc image detected: this image contains an ostree-based bootable OS "
          "(containers.bootc=1 or ostree.bootable=1) and cannot be imported as a regular "
          "container disk; bootc-to-disk conversion is not yet implemented (" +
          Describe() + ")");
    }
  }
  return image;
}

Result<std::unique_ptr<ByteSource>> RegistryClient::OpenBlob(const Descriptor& blob) {
  CDI_RETURN_IF_ERROR(CheckDigest(blob.digest));
  CDI_ASSIGN_OR_RETURN(DigestHasher hasher, DigestHasher::For(blob.digest));
  const std::string what = "layer " + blob.digest + " of " + Describe();
  CDI_RETURN_IF_ERROR(impl_->RefreshTokenIfOld());
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> inner,
                       OpenHttpSource(impl_->BlobSpec(blob), impl_->cancel()));
  if (inner->size() && *inner->size() != blob.size) {
    return CorruptImageError("the registry serves the " + what + " with " +
                             std::to_string(*inner->size()) + " bytes; the manifest says " +
                             std::to_string(blob.size) + ": nothing of it is used");
  }
  return std::unique_ptr<ByteSource>(
      std::make_unique<VerifiedBlob>(std::move(inner), blob, std::move(hasher), what));
}

std::string RegistryClient::Describe() const { return impl_->reference().Describe(); }
const ImageReference& RegistryClient::reference() const { return impl_->reference(); }

}  // namespace cdi::importer::registry
