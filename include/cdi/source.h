// Where an image comes from: its URL or path, TLS trust and client
// certificates, credentials, proxies and the network's limits. Part of the
// public API (cdi/import.h includes it); the TLS and source modules build on
// these structs alone.
#ifndef CDI_SOURCE_H_
#define CDI_SOURCE_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cdi/quantity.h"

namespace cdi {

enum class TlsVerify { kOn, kOff };

// How the server's certificate is trusted and how we prove who we are.
struct TlsSettings {
  // Verification is on unless kOff (then a warning is logged).
  TlsVerify verify = TlsVerify::kOn;
  // Extra CA certificates, added to the system store: PEM files (several
  // certificates per file allowed), PEM text, and directories in which every
  // regular file whose name does not start with '.' is PEM.
  std::vector<std::string> ca_files;
  std::vector<std::string> ca_pem;
  std::vector<std::string> ca_dirs;
  // Client certificate for mutual TLS: a file path or PEM text for each of the
  // certificate and the key. Empty: no client certificate.
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_cert_pem;
  std::string client_key_pem;
  // CA certificates of an HTTPS proxy (the importer pod's /proxycerts/): PEM
  // files and directories read as ca_files and ca_dirs are. All extra CAs form
  // one pool, trusted for the server and for an https:// proxy alike, as CDI
  // trusts them: a proxy that inspects TLS re-signs servers' certificates.
  // A proxy's certificate is always verified, whatever `verify` says.
  std::vector<std::string> proxy_ca_files;
  std::vector<std::string> proxy_ca_dirs;
};

// Credentials. Never sent to another origin on redirect, never logged.
struct HttpAuth {
  std::string user;      // basic auth; user info in the URL is used when empty
  std::string password;
  std::vector<std::string> headers;  // "Name: value" each
};

// Which HTTP proxy a request goes through. A field left unset is read from
// the environment when the source opens: http_proxy, else HTTP_PROXY (which
// is ignored when REQUEST_METHOD is set: in a CGI program it comes from a
// request header); https_proxy, else HTTPS_PROXY; no_proxy, else NO_PROXY.
// An empty value means no proxy (or, for no_proxy, no exception).
//  - A proxy is "http://[user:password@]host[:port]" or "https://..." (TLS
//    to the proxy); the port defaults to the scheme's, and "host:port" alone
//    means http://. Other schemes (socks5://) are refused.
//    Its credentials go to the proxy only, never into a message or log line.
//  - https:// URLs go through the proxy in a CONNECT tunnel: the server's
//    credentials and headers travel inside TLS, never in clear to the proxy.
//  - no_proxy: names, IP addresses and CIDR ranges separated by commas; a
//    name matches itself and its subdomains (".example.com" as well as
//    "example.com"), "host:port" matches one port only, "*" matches all.
struct ProxySettings {
  std::optional<std::string> http_proxy;   // for http:// URLs
  std::optional<std::string> https_proxy;  // for https:// URLs
  std::optional<std::string> no_proxy;
};

struct NetworkSettings {
  std::chrono::seconds connect_timeout{30};
  // A transfer slower than stall_bytes_per_second for stall_window is a stall.
  // Time spent waiting for the reader (a slow target) does not count.
  uint64_t stall_bytes_per_second = 1024;
  std::chrono::seconds stall_window{60};
  int max_redirects = 10;

  // Retries. A transient failure (connection refused or reset, a timeout, a
  // stall, a body cut short, a DNS server that does not answer, HTTP 408,
  // 429, 500, 502, 503, 504) is retried after an exponential back-off with
  // jitter: a random wait between half and all of retry_initial_delay * 2^k
  // (k = retries so far), at most retry_max_delay, or what a Retry-After
  // header asks. Once bytes have arrived, a retry resumes from the last byte
  // received ("Range: bytes=N-" with If-Range), so the stream continues
  // unbroken. Permanent failures (other 4xx, TLS verification, a host name
  // that does not exist, a changed image) fail at once.
  // The budget is per outage: at most max_retries retries and retry_budget of
  // time from its first failure; an attempt that delivers bytes ends the
  // outage, so a long import over a flaky link is not abandoned while it
  // makes progress. max_retries = 0 turns retries off.
  int max_retries = 5;
  std::chrono::milliseconds retry_budget{300'000};
  std::chrono::milliseconds retry_initial_delay{1'000};
  std::chrono::milliseconds retry_max_delay{30'000};

  // Connections an http(s):// download may use at once. When the server
  // serves byte ranges ("Accept-Ranges: bytes"), names the image with a
  // strong ETag or a Last-Modified, and declares its length, an image larger
  // than connection_memory is fetched in parts, each a ranged GET with
  // If-Range that resumes and retries on its own, up to `connections` at a
  // time, holding at most connection_memory together; the bytes still reach
  // the decoder once, in order. Otherwise, and with 1, one GET. A part the
  // server answers with a changed image, or with the whole image, fails the
  // download (kNetwork): two versions are never mixed.
  int connections = 4;
  // When the parts start. true: once one connection is seen to be the bound
  // (over three windows of 100 ms of body in a row the reader kept up with
  // the first GET, which waited for it less than a fifth of the time: a far
  // or capped server); while the reader is slower than one connection (a
  // near, fast server) the first GET goes on alone, as more connections
  // would only cost CPU and memory. false: right after the first GET's
  // first part.
  bool adaptive_connections = true;
  // What the parts fetched ahead may hold together. 0: a quarter of the
  // import's memory budget (16 MiB when the source is opened on its own).
  uint64_t connection_memory = 0;

  ProxySettings proxy;
};

// How a container image is read from a registry (docker:// URLs).
struct RegistrySettings {
  // The image of a multi-architecture index to import, as image platforms
  // name architectures ("amd64", "arm64", "s390x"); empty: this machine's.
  // When set, a single image whose configuration names another
  // architecture is refused (CDI's IMPORTER_REGISTRY_IMAGE_ARCHITECTURE).
  std::string architecture;
  // An insecure registry (CDI's insecureRegistries, passed as INSECURE_TLS):
  // HTTPS without certificate verification, and plain HTTP when the registry
  // does not speak HTTPS.
  bool insecure = false;
};

// How an object in S3 (or a service that speaks its API: MinIO, Ceph RGW, ...)
// is reached, for s3://BUCKET/KEY URLs. Requests are signed with AWS
// Signature Version 4 when an access key is given, and go out unsigned
// (anonymous, for public objects) when none is. TLS, proxies, retries and
// resume are those of the HTTP source (TlsSettings, NetworkSettings):
// a dropped download resumes with a signed "Range: bytes=N-" request.
enum class S3Addressing {
  kAuto,         // virtual-hosted for AWS's own endpoints when the bucket name allows it, else path
  kPath,         // ENDPOINT/BUCKET/KEY
  kVirtualHost,  // BUCKET.ENDPOINT-HOST/KEY
};

struct S3Settings {
  // The service's base URL, "http(s)://host[:port]" (a path is not allowed).
  // Empty: AWS's endpoint for the region, https://s3.REGION.amazonaws.com.
  std::string endpoint;
  // The signing region. Empty: REGION of an endpoint s3.REGION.amazonaws.com,
  // else us-east-1 (what most other services accept).
  std::string region;
  S3Addressing addressing = S3Addressing::kAuto;
  // Credentials; never logged, never sent to another origin. Both or none of
  // the key pair; the session token (temporary credentials) needs both.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

struct SourceSpec {
  // An http:// or https:// URL, a docker:// image reference
  // (docker://HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]: the disk image in
  // the image's disk/ directory), s3://BUCKET/KEY (see `s3`), a local path,
  // or "-" for standard input.
  std::string url;
  TlsSettings tls;
  HttpAuth auth;
  NetworkSettings network;
  RegistrySettings registry;
  S3Settings s3;  // for s3:// URLs only
};

}  // namespace cdi

#endif  // CDI_SOURCE_H_
