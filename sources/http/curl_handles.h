// The libcurl handles of one HTTP download and the options set on them: the
// easy handle of its requests, the multi handle that runs them, and the
// request headers. What each option is and why lives here; what the
// responses mean does not.
//
//   InitCurlOnce();
//   CurlHandles handles;
//   CDI_RETURN_IF_ERROR(handles.Configure(network, callbacks, *tls));
//   for each request:
//     CDI_RETURN_IF_ERROR(handles.Prepare({.url = url, .proxy = ..., ...}));
//     curl_multi_add_handle(handles.multi(), handles.easy()); ...
//
// Thread-safety: one thread configures and runs the handles; Wakeup() may be
// called from any thread.
#ifndef CDI_SOURCES_HTTP_CURL_HANDLES_H_
#define CDI_SOURCES_HTTP_CURL_HANDLES_H_

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/http/proxy.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {

// curl_global_init, once per process whatever the number of imports running
// in parallel threads (it is not safe to call twice concurrently).
void InitCurlOnce();

// Credentials for the origin of the URL as given, and only for it.
struct Credentials {
  std::string user;  // basic auth; none when empty
  std::string password;
  std::vector<std::string> headers;  // "Name: value" each, already checked
  // When set, user and password are an access key pair that signs each
  // request with AWS Signature Version 4 instead of basic auth: curl's
  // CURLOPT_AWS_SIGV4 parameter, "aws:amz:REGION:SERVICE". Every header of
  // the request list is signed, the Range of a resume among them.
  std::string aws_sigv4;
};

// One request: where it goes and what it asks for.
struct RequestOptions {
  const HttpUrl* url = nullptr;
  const Proxy* proxy = nullptr;              // null: connect directly
  const Credentials* credentials = nullptr;  // null: send none
  std::string range;                         // "N-" for "Range: bytes=N-"; "" for the whole body
  std::string if_range;                      // an If-Range validator; "" for none
};

class CurlHandles {
 public:
  // Where curl delivers a response: each header line, then the body.
  struct Callbacks {
    curl_write_callback header = nullptr;
    curl_write_callback body = nullptr;
    void* data = nullptr;  // passed to both
  };

  CurlHandles() = default;
  CurlHandles(const CurlHandles&) = delete;
  CurlHandles& operator=(const CurlHandles&) = delete;

  // Creates the handles and sets the options every request shares: http
  // and https only, no redirects followed by curl, HTTP/1.1 GET, the
  // User-Agent, no signals, TCP keep-alive, headers for the server only (not
  // a proxy's CONNECT), no proxy from the environment, curl's largest
  // receive buffer, the connect timeout, the callbacks, curl's debug output
  // (read for excess body bytes only), and `tls` (which
  // must outlive the handles' transfers). kInternal when libcurl refuses.
  Status Configure(const NetworkSettings& network, const Callbacks& callbacks, tls::CurlTls& tls);

  // Sets the options of one request: its URL and proxy (with the proxy's
  // credentials), basic auth or an AWS signature and the extra headers when
  // `credentials` is set, the range and If-Range. Clears the error message
  // of the last one.
  Status Prepare(const RequestOptions& request);

  CURL* easy() const { return easy_.get(); }
  CURLM* multi() const { return multi_.get(); }

  // Curl's message for the last request's failure; "" when it left none.
  std::string_view error_message() const { return error_buffer_; }

  // The errno of the last failed connect, send or receive; 0 when none.
  long os_errno() const;  // NOLINT(google-runtime-int): curl's type
  // The HTTP status of a proxy's answer to CONNECT; 0 when there was none.
  long connect_code() const;  // NOLINT(google-runtime-int): curl's type

  // True when curl found bytes beyond the declared Content-Length in the
  // last request's response. Curl drops them and tells only its debug
  // output, and only for bytes that arrive in the same read as the body's
  // last bytes: later ones it never reads.
  bool excess_found() const { return excess_found_; }

  // Any thread: interrupts the running thread's wait for the network.
  void Wakeup();

 private:
  template <typename T>
  Status SetOption(CURLoption option, T value, const char* name);

  struct EasyDeleter {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  };
  struct MultiDeleter {
    void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
  };
  struct HeaderListDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
  };
  using HeaderList = std::unique_ptr<curl_slist, HeaderListDeleter>;

  static Status AppendHeader(HeaderList& list, const std::string& header);
  // curl's debug output: only the note of excess body bytes is looked at;
  // nothing of it is kept or logged (it holds request headers).
  static int OnDebug(CURL* handle, curl_infotype type, char* text, size_t size, void* self_pointer);

  // Created before the transfer thread starts and destroyed after it ends.
  std::unique_ptr<CURL, EasyDeleter> easy_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  HeaderList request_headers_;
  std::string range_;
  bool excess_found_ = false;
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_CURL_HANDLES_H_
