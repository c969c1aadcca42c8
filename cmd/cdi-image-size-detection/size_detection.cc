#include "cmd/cdi-image-size-detection/size_detection.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "cdi/import.h"
#include "pod/go_flags.h"
#include "pod/termination_message.h"

namespace cdi::sizedetect {
namespace {

// The virtual size from the header; a raw image inside a compressed wrapper
// declares none, and is read through to count it.
Result<uint64_t> VirtualSize(const std::string& source) {
  SourceSpec spec;
  spec.url = source;
  for (InspectDepth depth : {InspectDepth::kHeader, InspectDepth::kFull}) {
    Result<ImageInfo> info = Inspect(spec, {}, depth);
    if (!info.ok()) return info.status();
    if (info->virtual_size) return *info->virtual_size;
  }
  return Status(ErrorCode::kUnsupported, "the image declares no virtual size");
}

}  // namespace

int RunSizeDetection(const std::string& program, const std::vector<std::string>& arguments) {
  std::string image_path;
  std::string scheme = "file://";
  std::string termination_log = "/dev/termination-log";
  bool version = false;
  pod::GoFlagSet flags(program);
  flags.String("image-path", &image_path, "(Mandatory) URL address of the virtual image.");
  flags.String("scheme", &scheme,
               "(Optional) Virtual image's URI scheme: file://, http:// or https://.");
  flags.String("termination-log", &termination_log, "where the virtual size is written");
  flags.Bool("version", &version, "print the version and exit");
  switch (flags.Parse(arguments)) {
    case pod::GoFlagSet::Outcome::kParsed:
      break;
    case pod::GoFlagSet::Outcome::kHelp:
      std::fputs(flags.Usage().c_str(), stderr);
      return kSizeOk;
    case pod::GoFlagSet::Outcome::kError:
      std::fprintf(stderr, "%s\n%s", flags.error().c_str(), flags.Usage().c_str());
      return kSizeBadArguments;
  }
  if (version) {
    std::printf("cdi-image-size-detection %s\n", std::string(Version()).c_str());
    return kSizeOk;
  }
  if (image_path.empty()) {
    pod::GoLog("One or more mandatory parameters are missing");
    return kSizeBadArguments;
  }

  pod::GoLog("Initializing size-detection pod");
  std::string source;
  if (scheme == "file://") {
    source = image_path;
  } else if (scheme == "http://" || scheme == "https://") {
    source = scheme + image_path;
  } else {
    pod::GoLog("Unable to parse the provided URL: 'scheme \"" + scheme +
               "\" is not read here; use file://, http:// or https://");
    return kSizeInvalidPath;
  }

  Result<uint64_t> size = VirtualSize(source);
  if (!size.ok()) {
    pod::GoLog("Unable to extract information from '" + RedactUrl(image_path) + "': '" +
               size.status().message() + "'");
    return kSizeInvalidFile;
  }
  pod::GoLog("Virtual size of " + RedactUrl(image_path) + ": " + std::to_string(*size) + " bytes");
  if (Status written = pod::WriteTerminationLog(termination_log, std::to_string(*size));
      !written.ok()) {
    pod::GoLog("Unable to write to termination file: '" + written.message() + "'");
    return kSizeBadTermFile;
  }
  pod::GoLog("Size-detection binary has completed");
  return kSizeOk;
}

}  // namespace cdi::sizedetect
