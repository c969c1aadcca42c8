#include "sources/http/curl_handles.h"

#include <chrono>
#include <mutex>

#include "sources/http/http_source.h"

namespace cdi::importer {
namespace {

// curl's receive buffer: its largest size, so that a fast link costs few
// callbacks.
constexpr long kCurlReceiveBuffer = 512 * 1024;  // NOLINT(google-runtime-int): curl's type

}  // namespace

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

template <typename T>
Status CurlHandles::SetOption(CURLoption option, T value, const char* name) {
  CURLcode code = curl_easy_setopt(easy_.get(), option, value);
  if (code != CURLE_OK) {
    return InternalError(std::string("libcurl refused ") + name + ": " + curl_easy_strerror(code));
  }
  return Status::Ok();
}

Status CurlHandles::AppendHeader(HeaderList& list, const std::string& header) {
  curl_slist* appended = curl_slist_append(list.get(), header.c_str());
  if (appended == nullptr) return InternalError("out of memory building request headers");
  list.release();
  list.reset(appended);
  return Status::Ok();
}

Status CurlHandles::Configure(const NetworkSettings& network, const Callbacks& callbacks,
                              tls::CurlTls& tls) {
  easy_.reset(curl_easy_init());
  multi_.reset(curl_multi_init());
  if (!easy_ || !multi_) return InternalError("cannot create a libcurl handle");
  error_buffer_[0] = '\0';
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_ERRORBUFFER, error_buffer_, "CURLOPT_ERRORBUFFER"));
  // Only http and https, also for anything curl might follow on its own.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR"));
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "CURLOPT_REDIR_PROTOCOLS_STR"));
  // Redirects are followed by the transfer, which checks each target and
  // decides where credentials go.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_FOLLOWLOCATION, 0L, "CURLOPT_FOLLOWLOCATION"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTPGET, 1L, "CURLOPT_HTTPGET"));
  // One long sequential stream gains nothing from HTTP/2 multiplexing, and
  // HTTP/1.1 leaves no stream window to cap throughput on long links.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTP_VERSION,
                                static_cast<long>(CURL_HTTP_VERSION_1_1),  // NOLINT
                                "CURLOPT_HTTP_VERSION"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_USERAGENT, kHttpUserAgent, "CURLOPT_USERAGENT"));
  // The transfer runs in its own thread: no signals (curl's DNS timeouts
  // would use SIGALRM otherwise).
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_NOSIGNAL, 1L, "CURLOPT_NOSIGNAL"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_TCP_KEEPALIVE, 1L, "CURLOPT_TCP_KEEPALIVE"));
  // A proxy's CONNECT response is not the server's response.
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L, "CURLOPT_SUPPRESS_CONNECT_HEADERS"));
  // The server's headers (secrets among them) go to the server only, never
  // into a proxy's CONNECT request.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HEADEROPT,
                                static_cast<long>(CURLHEADER_SEPARATE),  // NOLINT
                                "CURLOPT_HEADEROPT"));
  // Proxies are chosen per request by Prepare, never by curl from the
  // environment.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_NOPROXY, "", "CURLOPT_NOPROXY"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_BUFFERSIZE, kCurlReceiveBuffer, "CURLOPT_BUFFERSIZE"));
  if (network.connect_timeout.count() > 0) {
    CDI_RETURN_IF_ERROR(SetOption(
        CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(  // NOLINT(google-runtime-int)
            std::chrono::duration_cast<std::chrono::milliseconds>(network.connect_timeout).count()),
        "CURLOPT_CONNECTTIMEOUT_MS"));
  }
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_HEADERFUNCTION, callbacks.header, "CURLOPT_HEADERFUNCTION"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HEADERDATA, callbacks.data, "CURLOPT_HEADERDATA"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_WRITEFUNCTION, callbacks.body, "CURLOPT_WRITEFUNCTION"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_WRITEDATA, callbacks.data, "CURLOPT_WRITEDATA"));
  // Bytes beyond a declared Content-Length are dropped by curl without an
  // error; only its debug output says so (see OnDebug).
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_DEBUGFUNCTION, &CurlHandles::OnDebug,
                                "CURLOPT_DEBUGFUNCTION"));
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_DEBUGDATA, static_cast<void*>(this), "CURLOPT_DEBUGDATA"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_VERBOSE, 1L, "CURLOPT_VERBOSE"));
  return tls.Apply(easy_.get());
}

int CurlHandles::OnDebug(CURL* /*handle*/, curl_infotype type, char* text, size_t size,
                         void* self_pointer) {
  // curl's note, "Excess found in a read: excess = N, ..." (7.x) or
  // "Excess found writing body: ..." (8.x).
  constexpr std::string_view kExcess = "Excess found";
  if (type == CURLINFO_TEXT && std::string_view(text, size).starts_with(kExcess)) {
    static_cast<CurlHandles*>(self_pointer)->excess_found_ = true;
  }
  return 0;
}

Status CurlHandles::Prepare(const RequestOptions& request) {
  error_buffer_[0] = '\0';
  excess_found_ = false;
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_URL, request.url->request_url.c_str(), "CURLOPT_URL"));
  const Proxy* proxy = request.proxy;
  // "" is curl's "no proxy", which also keeps it from the environment.
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_PROXY, proxy != nullptr ? proxy->url.c_str() : "", "CURLOPT_PROXY"));
  const bool proxy_credentials = proxy != nullptr && !proxy->user.empty();
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROXYUSERNAME,
                                proxy_credentials ? proxy->user.c_str() : nullptr,
                                "CURLOPT_PROXYUSERNAME"));
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROXYPASSWORD,
                                proxy_credentials ? proxy->password.c_str() : nullptr,
                                "CURLOPT_PROXYPASSWORD"));

  const Credentials* credentials = request.credentials;
  const bool signing = credentials != nullptr && !credentials->aws_sigv4.empty();
  // Set before the user name: curl picks the signature as the way to
  // authenticate when the parameter is set.
  CDI_RETURN_IF_ERROR(SetOption(CURLOPT_AWS_SIGV4,
                                signing ? credentials->aws_sigv4.c_str() : nullptr,
                                "CURLOPT_AWS_SIGV4"));
  if (credentials != nullptr && !credentials->user.empty()) {
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_USERNAME, credentials->user.c_str(), "CURLOPT_USERNAME"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_PASSWORD, credentials->password.c_str(), "CURLOPT_PASSWORD"));
    if (!signing) {
      CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTPAUTH,
                                    static_cast<unsigned long>(CURLAUTH_BASIC),  // NOLINT
                                    "CURLOPT_HTTPAUTH"));
    }
  } else {
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_USERNAME, static_cast<const char*>(nullptr), "CURLOPT_USERNAME"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_PASSWORD, static_cast<const char*>(nullptr), "CURLOPT_PASSWORD"));
  }
  request_headers_.reset();
  if (credentials != nullptr) {
    for (const std::string& header : credentials->headers) {
      CDI_RETURN_IF_ERROR(AppendHeader(request_headers_, header));
    }
  }
  range_ = request.range;
  if (!range_.empty() && !request.if_range.empty()) {
    CDI_RETURN_IF_ERROR(AppendHeader(request_headers_, "If-Range: " + request.if_range));
  }
  if (signing && !range_.empty()) {
    // curl signs the headers of the list, not its own Range: a resume's
    // range goes in the list, so that the signature covers it.
    CDI_RETURN_IF_ERROR(AppendHeader(request_headers_, "Range: bytes=" + range_));
    range_.clear();
  }
  CDI_RETURN_IF_ERROR(
      SetOption(CURLOPT_RANGE, range_.empty() ? nullptr : range_.c_str(), "CURLOPT_RANGE"));
  return SetOption(CURLOPT_HTTPHEADER, request_headers_.get(), "CURLOPT_HTTPHEADER");
}

long CurlHandles::os_errno() const {  // NOLINT(google-runtime-int): curl's type
  long os_errno = 0;                  // NOLINT(google-runtime-int)
  curl_easy_getinfo(easy_.get(), CURLINFO_OS_ERRNO, &os_errno);
  return os_errno;
}

long CurlHandles::connect_code() const {  // NOLINT(google-runtime-int): curl's type
  long code = 0;                          // NOLINT(google-runtime-int)
  curl_easy_getinfo(easy_.get(), CURLINFO_HTTP_CONNECTCODE, &code);
  return code;
}

void CurlHandles::Wakeup() {
  // The one libcurl call that is safe from another thread.
  if (multi_) curl_multi_wakeup(multi_.get());
}

}  // namespace cdi::importer
