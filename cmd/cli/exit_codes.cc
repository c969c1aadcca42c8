#include "cmd/cli/exit_codes.h"

namespace cdi::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kUnsupported: return kExitUnsupported;
    case ErrorCode::kCorruptImage: return kExitCorrupt;
    case ErrorCode::kNetwork: return kExitNetwork;
    case ErrorCode::kTls: return kExitTls;
    case ErrorCode::kTooSmall: return kExitTooSmall;
    case ErrorCode::kIo: return kExitIo;
    case ErrorCode::kChecksumMismatch: return kExitChecksum;
    case ErrorCode::kCancelled: return kExitCancelled;
    case ErrorCode::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

std::string_view ExitCodeTable() {
  return "Exit codes:\n"
         "    0  success\n"
         "    1  internal error\n"
         "    2  usage: bad flags or values, or the target already exists or is being\n"
         "       written by another import\n"
         "    3  unsupported image format or feature\n"
         "    4  corrupt or truncated image\n"
         "    5  network or HTTP error\n"
         "    6  TLS error (certificate, handshake)\n"
         "    7  the image does not fit the target (a larger volume is required)\n"
         "    8  I/O error reading the source file or writing the target\n"
         "    9  checksum mismatch\n"
         "  130  cancelled (SIGINT or SIGTERM)\n";
}

}  // namespace cdi::cli
