// SIGINT and SIGTERM cancel a running import cleanly. Further signals do not
// cut the cleanup short (a partial file removed, a device's ends zeroed): they
// are acknowledged on standard error and otherwise ignored, so that
// `timeout -k`, a pod's deletion or an impatient Ctrl-C never leave a target
// that looks complete. Only SIGKILL stops a cleanup.
#ifndef CDI_CMD_CLI_SIGNALS_H_
#define CDI_CMD_CLI_SIGNALS_H_

#include "cdi/import.h"

namespace cdi::cli {

// Installs handlers that call token->Cancel(). `token` must outlive the process's
// use of it (a static or a main()-scoped object).
void CancelOnSignals(CancelToken* token);

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_SIGNALS_H_
