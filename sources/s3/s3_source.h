// The S3 source: one object, read with GetObject requests through the HTTP
// source (sources/http/), signed with AWS Signature Version 4.
//
// s3://BUCKET/KEY and SourceSpec::s3 give the request's URL, path-style or
// virtual-hosted, and its region (s3_location.h). With an access key, every
// request carries an AWS4-HMAC-SHA256 signature made by libcurl
// (CURLOPT_AWS_SIGV4) over the host, x-amz-date, x-amz-content-sha256 (the
// hash of the empty body), x-amz-security-token when there is a session
// token, the extra headers and, when a dropped download resumes, its
// Range and If-Range: the HTTP source's retries and resume work unchanged,
// each request signed anew. Without one the requests go unsigned
// (anonymous). TLS trust, proxies and the network's limits are the HTTP
// source's. A presigned URL is an https:// URL: the HTTP source reads it.
#ifndef CDI_SOURCES_S3_S3_SOURCE_H_
#define CDI_SOURCES_S3_S3_SOURCE_H_

#include <memory>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

// Opens spec.url, "s3://BUCKET/KEY", and returns once the object's first
// response is in (as OpenHttpSource). Errors are those of OpenHttpSource,
// naming the request's URL; a refusal by the service adds its error code and
// what to do ("HTTP 403 Forbidden from https://...: S3 error
// SignatureDoesNotMatch (...): check the secret access key ..."), and a
// settings problem (no key, only half of the key pair, a bad endpoint or
// region) is kInvalidArgument. No message or log line holds a secret.
Result<std::unique_ptr<ByteSource>> OpenS3Source(const SourceSpec& spec,
                                                 const CancelToken* cancel);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_S3_S3_SOURCE_H_
