// cdi-image upload IMAGE URL: sends a local image, as it is, to an upload
// server (cdi-uploadserver, CDI's own) or to CDI's upload proxy, which
// converts it while it arrives. The body carries its SHA-256 (Repr-Digest),
// the CLI's progress display shows what was sent, and a connection that
// drops is continued where the server stands (HEAD answers Upload-Offset,
// PATCH with Content-Range sends the rest); a server that cannot continue
// (no Upload-Offset) is sent the image again from its start.
#ifndef CDI_CMD_CDI_IMAGE_UPLOAD_COMMAND_H_
#define CDI_CMD_CDI_IMAGE_UPLOAD_COMMAND_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace cdi::upload {

struct UploadOptions {
  std::string image;  // a local file
  std::string url;    // https://HOST/v1beta1/upload (or upload-async)
  std::string token;  // sent as Authorization: Bearer
  std::string token_file;
  std::vector<std::string> ca_bundles;
  std::string client_cert;
  std::string client_key;
  bool insecure = false;
  bool no_checksum = false;
  std::string progress = "auto";  // auto | bar | plain | json | none
  int retries = 5;                // continuations of a dropped connection in a row
  double retry_delay = 1;
  int connect_timeout = 30;
  int stall_timeout = 60;
  // Set by the caller from the shared -q flag.
  bool quiet = false;
};

CLI::App* AddUploadCommand(CLI::App* parent, UploadOptions* options);

int RunUpload(const UploadOptions& options);

}  // namespace cdi::upload

#endif  // CDI_CMD_CDI_IMAGE_UPLOAD_COMMAND_H_
