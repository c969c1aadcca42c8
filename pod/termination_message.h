// The importer pod's termination message: what CDI's controller reads from
// the container's terminated state (kubelet copies /dev/termination-log).
//
// CDI's importer writes two kinds (cmd/cdi-importer/importer.go):
//  - JSON, one line, for success, a blank disk and a checksum mismatch: its
//    common.TerminationMessage marshalled by Go's encoding/json, fields in
//    declaration order and left out when unset:
//      {"scratchSpaceRequired":false,"preallocationApplied":true,"message":"Import Complete"}
//  - plain text for every other failure ("Unable to process data: ..."),
//    newlines turned into spaces (util.WriteTerminationMessage).
// kubelet keeps at most 4096 bytes; longer messages are shortened here so
// that the JSON stays valid.
#ifndef CDI_POD_TERMINATION_MESSAGE_H_
#define CDI_POD_TERMINATION_MESSAGE_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"

namespace cdi::pod {

inline constexpr size_t kMaxTerminationMessageBytes = 4096;
inline constexpr std::string_view kCompleteMessage = "Import Complete";

// CDI's common.TerminationMessage, the fields this importer and the upload
// server set (CDI's vddkInfo belongs to a source they do not handle).
struct TerminationMessage {
  std::optional<bool> scratch_space_required;
  std::optional<bool> preallocation_applied;
  std::optional<bool> deadline_passed;  // the upload server's deadline went by
  // A registry image's labels (EnvToLabels); left out when empty.
  std::map<std::string, std::string> labels;
  std::optional<std::string> message;
};

// CDI's labels from a registry image's Env: each NAME=value whose name holds
// KUBEVIRT_IO_ ("INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small"
// becomes "instancetype.kubevirt.io/default-instancetype": "u1.small").
std::map<std::string, std::string> EnvToLabels(const std::vector<std::string>& env);

// The JSON as Go's json.Marshal writes it: unset fields left out, strings
// escaped as Go escapes them (<, > and & as \u003c, \u003e, \u0026; invalid
// UTF-8 as U+FFFD). At most kMaxTerminationMessageBytes: a longer message
// field is cut (at a character boundary) and ends in "...".
std::string ToJson(const TerminationMessage& message);

// A plain-text message as CDI writes one: newlines become spaces, and the
// text is cut to kMaxTerminationMessageBytes at a character boundary.
std::string PlainTerminationText(std::string_view text);

// Replaces the file at `path` with `text` (mode 0600 when created, as CDI's
// os.WriteFile). kIo naming the path on failure.
Status WriteTerminationLog(const std::string& path, std::string_view text);

}  // namespace cdi::pod

#endif  // CDI_POD_TERMINATION_MESSAGE_H_
