// The expected checksum of an image ("alg:hex"), read the same way whichever
// face it comes from: --checksum, IMPORTER_CHECKSUM or a DataVolume's
// annotation.
#ifndef CDI_CHECKSUM_H_
#define CDI_CHECKSUM_H_

#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi {

struct ExpectedChecksum {
  std::string algorithm;  // md5, sha1, sha256, sha512 (lower case)
  std::string hex;        // lower case, of the algorithm's length
};

// Parses "alg:hex" as CDI does (case-insensitive, surrounding spaces trimmed),
// with CDI's messages for each kind of bad value.
Result<ExpectedChecksum> ParseChecksum(std::string_view text);

}  // namespace cdi

#endif  // CDI_CHECKSUM_H_
