// cdi-source-update-poller: the DataImportCron poller of registry sources.
//
// CDI's controller runs it from the importer image in a CronJob as
//   /usr/bin/cdi-source-update-poller -ns NS -cron NAME -url docker://... [-certdir /certs]
// with IMPORTER_ACCESS_KEY_ID, IMPORTER_SECRET_KEY and INSECURE_TLS in the
// environment. CDI's poller asks the registry for the digest of the URL's
// tag and patches the DataImportCron's annotations with it
// (tools/cdi-source-update-poller).
//
// Reading a registry needs a registry client, which this project does not
// have yet. Until it does, this program checks CDI's flags (Go's syntax,
// pod/go_flags.h) and hands the run over to CDI's poller in the overlay
// image (pod/handover.h), with the same arguments and environment. A native
// poller replaces the hand-over in RunSourceUpdatePoller, behind the same
// flags. Flags of its own:
//   -handover-program PATH  CDI's poller (default /usr/libexec/cdi/cdi-source-update-poller)
//   -version                prints "cdi-source-update-poller <version>" and exits 0
// Exit codes: 0 (also -h), 1 a mandatory flag is missing, or no poller to
// hand over to ("Failed to get image digest: ..."), 2 a bad flag; after a
// hand-over, CDI's poller's own.
#ifndef CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_
#define CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_

#include <string>
#include <vector>

namespace cdi::poller {

int RunSourceUpdatePoller(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace cdi::poller

#endif  // CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_
