// SIGINT and SIGTERM cancel a running import cleanly; a second signal exits at once.
#ifndef CDI_CMD_CLI_SIGNALS_H_
#define CDI_CMD_CLI_SIGNALS_H_

#include "cdi/import.h"

namespace cdi::cli {

// Installs handlers that call token->Cancel(). `token` must outlive the process's
// use of it (a static or a main()-scoped object).
void CancelOnSignals(CancelToken* token);

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_SIGNALS_H_
