#include "sources/s3/s3_source.h"

#include <string>
#include <utility>

#include "common/log.h"
#include "sources/http/http_source.h"
#include "sources/s3/s3_error.h"
#include "sources/s3/s3_location.h"

namespace cdi::importer {
namespace {

// SHA-256 of the empty body of a GET: S3 wants the payload's hash in a
// header of its own (x-amz-content-sha256), and the signature covers it.
constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Status CheckCredentials(const SourceSpec& spec) {
  const S3Settings& s3 = spec.s3;
  if (s3.access_key_id.empty() != s3.secret_access_key.empty()) {
    return InvalidArgumentError(
        "S3 credentials need both the access key ID and the secret access key, or neither (an "
        "anonymous request); only " +
        std::string(s3.access_key_id.empty() ? "the secret access key" : "the access key ID") +
        " is set");
  }
  if (!s3.session_token.empty() && s3.access_key_id.empty()) {
    return InvalidArgumentError(
        "an S3 session token goes with the temporary access key ID and secret access key it was "
        "issued with; give them too");
  }
  if (!spec.auth.user.empty() || !spec.auth.password.empty()) {
    return InvalidArgumentError(
        "basic authentication does not apply to s3:// sources: give the access key ID and secret "
        "access key as S3 credentials");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenS3Source(const SourceSpec& spec,
                                                 const CancelToken* cancel) {
  CDI_ASSIGN_OR_RETURN(S3Object object, ParseS3Url(spec.url));
  CDI_ASSIGN_OR_RETURN(S3Request request, ResolveS3Request(object, spec.s3));
  CDI_RETURN_IF_ERROR(CheckCredentials(spec));

  SourceSpec http = spec;
  http.url = request.url;
  HttpSourceOptions options;
  options.explain_error = ExplainS3Error;
  const bool signing = !spec.s3.access_key_id.empty();
  if (signing) {
    http.auth.user = spec.s3.access_key_id;
    http.auth.password = spec.s3.secret_access_key;
    http.auth.headers.push_back("x-amz-content-sha256: " + std::string(kEmptyPayloadSha256));
    if (!spec.s3.session_token.empty()) {
      http.auth.headers.push_back("x-amz-security-token: " + spec.s3.session_token);
    }
    options.aws_sigv4 = "aws:amz:" + request.region + ":s3";
  }
  Logger()->debug("{}: GET {} ({}, {})", request.describe, RedactUrl(request.url),
                  request.addressing == S3Addressing::kVirtualHost ? "virtual-hosted" : "path-style",
                  signing ? "signed for region " + request.region : std::string("unsigned"));
  return OpenHttpSource(http, cancel, std::move(options));
}

}  // namespace cdi::importer
