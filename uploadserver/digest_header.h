// The checksum a client may send with an upload, beyond CDI's contract:
//   Repr-Digest: sha-256=:<base64>:   (RFC 9530; also sha-512; Content-Digest
//                                      is read the same way, the upload
//                                      having no content coding)
//   X-CDI-Checksum: sha256:<hex>      (CDI's IMPORTER_CHECKSUM form: md5,
//                                      sha1, sha256, sha512)
// over the image as sent (a form's `file` part). Both are optional; with
// neither, nothing is checked. Pure: tested without a server.
#ifndef CDI_UPLOADSERVER_DIGEST_HEADER_H_
#define CDI_UPLOADSERVER_DIGEST_HEADER_H_

#include <optional>
#include <string>

#include "cdi/status.h"
#include "uploadserver/http_request.h"

namespace cdi::uploadserver {

// The expected checksum as "alg:hex" (cdi::ParseChecksum's form), or nullopt
// when the request carries none this server can check (a Repr-Digest naming
// only algorithms it does not compute is ignored, as RFC 9530 allows).
// kInvalidArgument for a malformed field or an X-CDI-Checksum that
// ParseChecksum refuses. With several, X-CDI-Checksum wins, then sha-256.
Result<std::optional<std::string>> ExpectedChecksum(const HttpRequest& request);

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_DIGEST_HEADER_H_
