// Handing work over to CDI's own programs, which the overlay image
// (Containerfile.cdi-overlay) carries beside ours.
//
// CDI's controller starts every importer pod, and its helper programs, from
// one image. What this project does not implement (today the gcs, imageio
// and vddk sources, registry node pull, registry endpoints other than
// docker://, and the registry poller outside its CronJob's pod) is handed
// over, in the overlay image, to CDI's binary of the same
// name under kHandoverDir: the process is replaced by it (exec), with the
// arguments CDI's controller passed and the environment unchanged, so that it
// speaks CDI's contract itself (termination message, metric, exit code). In
// the plain image there is nothing to hand over to, and the caller keeps its
// own clear refusal.
#ifndef CDI_POD_HANDOVER_H_
#define CDI_POD_HANDOVER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "pod/pod_config.h"

namespace cdi::pod {

// Where the overlay image puts CDI's programs (launchers of the same names).
inline constexpr std::string_view kHandoverDir = "/usr/libexec/cdi";

// The hand-over program for `name` ("cdi-importer"): <kHandoverDir>/<name>.
std::string HandoverProgram(std::string_view name);

// Why CDI's importer must run this pod, as the log says it
// ("IMPORTER_SOURCE=s3"); nullopt when cdi-importer handles it
// (http, none, and the values it refuses itself, such as unknown sources).
std::optional<std::string> ImporterHandoverReason(const Environment& env);

// True when `path` is a regular file (links followed) this process may execute.
bool IsExecutableFile(const std::string& path);

// Replaces this process with `program` (argv[0] is `program`, then
// `arguments`; the environment as it is). Returns only when exec failed:
// kUnsupported naming the program and errno's text.
Status ExecProgram(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace cdi::pod

#endif  // CDI_POD_HANDOVER_H_
