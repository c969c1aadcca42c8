// The client side of the upload protocol (cdi-image upload): sends a local
// image file, as it is, to an upload server (cdi-uploadserver, CDI's own) or
// to CDI's upload proxy.
//
//   CDI_ASSIGN_OR_RETURN(auto client, UploadClient::Open(options, cancel));
//   client->set_digest(*client->ReprDigest());      // optional
//   Result<UploadExchange> sent = client->Send(0, on_progress);   // POST
//   Result<UploadExchange> where = client->Ask();    // HEAD: Upload-Offset
//   sent = client->Send(*where->upload_offset, on_progress);      // PATCH
//
// Each call is one request; what to do with its answer (continue, give up)
// is the caller's.
#ifndef CDI_UPLOADSERVER_UPLOAD_CLIENT_H_
#define CDI_UPLOADSERVER_UPLOAD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cdi/import.h"
#include "common/unique_fd.h"

namespace cdi::tls {
class CurlTls;
}

namespace cdi::uploadserver {

struct UploadClientOptions {
  std::string image;   // a local file with data
  std::string url;     // https://HOST/v1beta1/upload (or upload-async)
  std::string token;   // sent as Authorization: Bearer; "" sends none
  TlsSettings tls;     // CA bundles, client certificate, verification
  int connect_timeout = 30;  // seconds
  int stall_timeout = 60;    // seconds without progress: the request fails
};

// What one request did, when it reached the point of an answer or of a
// dropped connection.
struct UploadExchange {
  bool completed = false;     // the request ran to its answer
  bool transient = false;     // not completed, and a continuation may cure it
  std::string failure;        // not completed: curl's words
  long status = 0;            // NOLINT(runtime/int): the HTTP status, 0 without an answer
  std::string answer;         // the body, at most 64 KiB
  std::optional<uint64_t> upload_offset;  // the Upload-Offset header
  uint64_t sent = 0;          // body bytes sent
};

class UploadClient {
 public:
  // Called at most every 100 ms while a body is sent, with the image
  // offset reached.
  using OnProgress = std::function<void(uint64_t offset)>;

  // Opens the image and prepares TLS. Errors: kIo (the file cannot be
  // opened), kInvalidArgument (not a regular file with data, a URL that is
  // not http(s)), kTls (certificates that cannot be loaded).
  static Result<std::unique_ptr<UploadClient>> Open(UploadClientOptions options,
                                                    const CancelToken& cancel);
  ~UploadClient();
  UploadClient(const UploadClient&) = delete;
  UploadClient& operator=(const UploadClient&) = delete;

  uint64_t size() const { return size_; }

  // The image's SHA-256 as RFC 9530's Repr-Digest value (sha-256=:BASE64:),
  // read once from the file.
  Result<std::string> ReprDigest() const;
  // Sent with every body from then on; "" sends none.
  void set_digest(std::string digest) { digest_ = std::move(digest); }

  // Sends the image from `first` to its end: POST from 0, PATCH with
  // Content-Range from elsewhere. Errors: kIo (reading the file), kCancelled,
  // kTls (the handshake or a certificate); anything else is in the exchange.
  Result<UploadExchange> Send(uint64_t first, const OnProgress& on_progress);
  // HEAD: where the server stands (upload_offset).
  Result<UploadExchange> Ask();

 private:
  UploadClient(UploadClientOptions options, const CancelToken& cancel, UniqueFd fd,
               uint64_t size, std::unique_ptr<tls::CurlTls> tls);
  Result<UploadExchange> Request(std::optional<uint64_t> first, const OnProgress* on_progress);

  const UploadClientOptions options_;
  const CancelToken& cancel_;
  const UniqueFd fd_;
  const uint64_t size_;
  const std::unique_ptr<tls::CurlTls> tls_;
  std::string digest_;
};

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_UPLOAD_CLIENT_H_
