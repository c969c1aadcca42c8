// S3's error responses: the XML body of a 4xx or 5xx
// (<Error><Code>NoSuchKey</Code><Message>...</Message></Error>) read into
// words for the message, with what to do about the common codes. Pure text.
#ifndef CDI_SOURCES_S3_S3_ERROR_H_
#define CDI_SOURCES_S3_S3_ERROR_H_

#include <string>
#include <string_view>

namespace cdi::importer {

// "S3 error SignatureDoesNotMatch (The request signature we calculated does
// not match ...): check the secret access key ..."; "" when `body` holds no
// <Code>. The service's message is cut to 300 bytes, control characters
// escaped.
std::string ExplainS3Error(std::string_view body);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_S3_S3_ERROR_H_
