// The one rule for an extra request header ("Name: value"), whichever face it
// comes from: --header and --header-file, a DataSource's extraHeaders and
// secretExtraHeaders, the pod's /extraheaders, or SourceSpec::auth.headers.
#ifndef CDI_HEADERS_H_
#define CDI_HEADERS_H_

#include <string_view>

#include "cdi/status.h"

namespace cdi {

// Accepts "Name: value" where Name is a non-empty RFC 9110 token (letters,
// digits and !#$%&'*+-.^_`|~; no spaces) and the line holds no CR, LF or NUL.
// Refused with kInvalidArgument, the message starting with `what` (how the
// caller names the header, e.g. "extra header #2"). The value never appears
// in a message: it may be a secret.
Status ValidateHeaderLine(std::string_view line, std::string_view what);

}  // namespace cdi

#endif  // CDI_HEADERS_H_
