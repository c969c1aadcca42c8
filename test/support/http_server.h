// Real HTTP servers on 127.0.0.1 for tests: nginx serving a directory (plain,
// TLS, mutual TLS), the project's fault-injecting server
// (test/server/fault_server.py) and its S3 server (test/support/s3_server.py). Each listens on a free port, writes all its
// files into its own temporary directory, and stops in its destructor.
//
// Constructors throw std::runtime_error when the server cannot start. They
// also add 127.0.0.1 and localhost to no_proxy, so that a proxy named in the
// environment does not stand between a test and its server.
// Thread-safety: construct and destroy on one thread; the const accessors may
// be called from any thread.
#ifndef CDI_TEST_SUPPORT_HTTP_SERVER_H_
#define CDI_TEST_SUPPORT_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "test/support/certs.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {

// ---------------------------------------------------------------------------
// nginx

struct NginxOptions {
  // Directory served at "/".
  std::string root;
  // Serve HTTPS with this certificate and key when set (TLS 1.2 and 1.3).
  CertKey tls;
  // Require a client certificate signed by this CA (PEM file) when set;
  // requests without one are answered 400 by nginx.
  std::string client_ca;
};

// One line of nginx's access log.
struct AccessLogEntry {
  std::string method;
  std::string uri;  // as requested, with the query
  int status = 0;
  uint64_t body_bytes = 0;
  std::string range;  // the Range header, "" when none
  std::string user_agent;
  std::string client_subject;  // client certificate's subject, "" when none
};

//   NginxServer server({.root = dir.path(), .tls = certs.server});
//   spec.url = server.Url("/disk.img");   // "https://127.0.0.1:PORT/disk.img"
//   ...
//   EXPECT_EQ(server.WaitForRequests(1).size(), 1u);
class NginxServer {
 public:
  explicit NginxServer(NginxOptions options);
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT", no trailing slash.
  std::string base_url() const;
  // base_url() + path; `path` starts with '/'.
  std::string Url(std::string_view path) const;
  // The same URL with another host name that resolves to 127.0.0.1
  // ("localhost"), for host name checks.
  std::string UrlWithHost(std::string_view host, std::string_view path) const;

  const std::string& access_log_path() const { return access_log_; }
  const std::string& error_log_path() const { return error_log_; }
  // Every request logged so far, in order.
  std::vector<AccessLogEntry> AccessLog() const;
  // nginx logs a request when it has sent the response, which may be a moment
  // after the client has it: waits (30 s at most) until `count` requests are
  // logged, then returns the whole log.
  std::vector<AccessLogEntry> WaitForRequests(size_t count) const;
  // Requests logged so far whose path (without query) is `path`.
  size_t CountRequests(std::string_view path) const;

 private:
  NginxOptions options_;
  TempDir dir_;
  std::string access_log_;
  std::string error_log_;
  uint16_t port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

// ---------------------------------------------------------------------------
// Fault server

// One request as the fault server recorded it.
struct RecordedRequest {
  std::string origin;  // "primary" or "other"
  std::string method;
  std::string target;  // path and query as sent
  std::string path;
  std::string query;
  std::map<std::string, std::string> headers;  // names in lower case

  bool HasHeader(const std::string& name) const { return headers.count(name) > 0; }
  // The header's value, "" when absent.
  std::string Header(const std::string& name) const;
};

// One response as the fault server recorded it, once it ended.
struct SentResponse {
  std::string origin;
  std::string method;
  std::string path;
  int status = 0;
  uint64_t first = 0;  // offset of its first body byte (a range's start)
  uint64_t bytes = 0;  // body bytes written to the socket
  // complete, close, reset, stall, or client (the client went away first)
  std::string ending;
};

//   FaultServer server(dir.path(), R"({"/short": {"file": "disk.img", "close_after": 1000},
//                                      "/moved": {"redirect": "other:/disk.img"}})");
//   spec.url = server.Url("/moved");
//   ...
//   for (const RecordedRequest& r : server.Requests()) ...
// The fault keys are documented in test/server/fault_server.py.
class FaultServer {
 public:
  // Serves the files under `root` on two origins, with the faults of
  // `script_json` (a JSON object mapping request paths to faults).
  explicit FaultServer(const std::string& root, const std::string& script_json = "{}");
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  uint16_t port() const { return port_; }
  uint16_t other_port() const { return other_port_; }
  // "http://127.0.0.1:PORT" + path on the primary origin.
  std::string Url(std::string_view path) const;
  // The same on the second origin ("other").
  std::string OtherUrl(std::string_view path) const;

  // Every request received so far, on both origins, in arrival order. A
  // request is recorded before it is answered.
  std::vector<RecordedRequest> Requests() const;
  const std::string& request_log_path() const { return request_log_; }
  // Requests received so far for `path`, in arrival order.
  std::vector<RecordedRequest> RequestsFor(std::string_view path) const;

  // Every response that has ended, in the order they ended. A response is
  // recorded after its last byte is written, which may be a moment after the
  // client has it: WaitForResponses waits (30 s at most) until `count` are.
  std::vector<SentResponse> Responses() const;
  std::vector<SentResponse> WaitForResponses(size_t count) const;
  // Body bytes sent for `path` over all its responses, once `responses` of
  // them have ended.
  uint64_t BytesSent(std::string_view path, size_t responses) const;

 private:
  TempDir dir_;
  std::string request_log_;
  std::string sent_log_;
  uint16_t port_ = 0;
  uint16_t other_port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

// ---------------------------------------------------------------------------
// S3 server

// The project's S3 server (test/support/s3_server.py): GetObject of the files
// ROOT/BUCKET/KEY, every request's SigV4 signature recomputed with botocore
// and refused (403, S3's XML error) when it differs.
struct S3ServerOptions {
  std::string access_key = "AKIDEXAMPLE";
  std::string secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  std::string session_token;                // required of every request when set
  std::vector<std::string> public_buckets;  // readable without a signature
  // "BUCKET/KEY:OFFSET": the first whole response for the object closes the
  // connection after OFFSET body bytes.
  std::vector<std::string> drops;
  // Serve HTTPS with this certificate and key when set.
  CertKey tls;
};

// One request as the S3 server logged it, once answered.
struct S3LoggedRequest {
  std::string method;
  std::string host;  // the Host header
  std::string path;  // as sent
  std::string range;
  std::string signed_headers;  // "host;range;x-amz-date..."; "" when unsigned or refused early
  int status = 0;
  uint64_t body_bytes = 0;
};

//   S3Server server(root);                       // root/bucket/disk.img
//   spec.url = "s3://bucket/disk.img";
//   spec.s3.endpoint = server.endpoint();        // path-style, 127.0.0.1
//   spec.s3.access_key_id = server.options().access_key; ...
// Virtual-hosted requests go to BUCKET.localhost (virtual_host_endpoint()),
// which curl resolves to the loopback address by itself.
class S3Server {
 public:
  explicit S3Server(const std::string& root, S3ServerOptions options = {});
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT" (https:// with TLS).
  std::string endpoint() const;
  // "http://localhost:PORT" (https:// with TLS): BUCKET.localhost:PORT names the bucket.
  std::string virtual_host_endpoint() const;
  const S3ServerOptions& options() const { return options_; }
  // Every request answered so far, in order.
  std::vector<S3LoggedRequest> Requests() const;

 private:
  S3ServerOptions options_;
  TempDir dir_;
  std::string log_;
  uint16_t port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

// A TCP port on 127.0.0.1 that nothing listens on (connections are refused).
uint16_t UnusedPort();

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_HTTP_SERVER_H_
