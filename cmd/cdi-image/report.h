// What `cdi-image apply` prints: the plan (--dry-run), the summary table after
// the imports, JSON documents for machines (--output json), and the exit code.
#ifndef CDI_CMD_CDI_IMAGE_REPORT_H_
#define CDI_CMD_CDI_IMAGE_REPORT_H_

#include <string>
#include <vector>

#include "manifests/plan.h"
#include "manifests/problems.h"
#include "manifests/runner.h"

namespace cdi::apply {

// The plan for people: each download with its source and how it is secured,
// then its DataVolumes with target, volume mode, request, PVC and usable sizes.
std::string PlanText(const Plan& plan);

// One table row per DataVolume: DATAVOLUME, PVC PATH, IMAGE, VIRTUAL SIZE,
// WRITTEN, TIME, RESULT; then the message of every failure.
std::string SummaryTable(const Plan& plan, const std::vector<Outcome>& outcomes);

enum class RunMode { kImport, kDryRun };

// One JSON object (one line) for machines:
//   {"dry_run":bool,"exit_code":N,"downloads":[...],"data_volumes":[...],
//    "problems":[...],"notes":[...]}
// `outcomes` empty: the plan only (dry run, or nothing ran because of problems).
std::string ReportJson(const Plan& plan, const std::vector<Outcome>& outcomes,
                       const Problems& problems, RunMode mode, int exit_code);

// 0 when every DataVolume was imported, else the exit code (cmd/cli/exit_codes.h)
// of the first failed DataVolume in plan order.
int ExitCodeOf(const std::vector<Outcome>& outcomes);

}  // namespace cdi::apply

#endif  // CDI_CMD_CDI_IMAGE_REPORT_H_
