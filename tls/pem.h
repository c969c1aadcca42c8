// Loading PEM certificates and keys, with messages that name where they came
// from. Internal to tls/.
//
// Thread-safety: free functions without shared state; safe from any thread.
#ifndef CDI_TLS_PEM_H_
#define CDI_TLS_PEM_H_

#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "tls/openssl_util.h"

namespace cdi::tls {

// An errno met while reading a TLS file or directory, as cdi::PosixError
// words it for an input: "<what> <path>: no such file or directory; ...".
Status FileError(int error, std::string_view what, const std::string& path);

// Reads a whole PEM file of at most 16 MiB. `what` names the file's role in
// messages ("CA file", "client key"). Errors: kInvalidArgument when the file
// is missing, unreadable, a directory or too large; kIo for other read errors.
Result<std::string> ReadPemFile(const std::string& path, std::string_view what);

// Every certificate in `pem` ("CERTIFICATE" and "TRUSTED CERTIFICATE" blocks;
// other blocks such as keys are skipped). `origin` names the input in messages
// ("CA file /certs/ca.pem"). Errors (kTls): no certificate at all, or a
// certificate block that does not parse.
Result<std::vector<X509Ptr>> ParseCertificates(std::string_view pem, std::string_view origin);

// The first private key in `pem`. Encrypted keys are refused (kTls) rather than
// prompting for a passphrase.
Result<PkeyPtr> ParsePrivateKey(std::string_view pem, std::string_view origin);

}  // namespace cdi::tls

#endif  // CDI_TLS_PEM_H_
