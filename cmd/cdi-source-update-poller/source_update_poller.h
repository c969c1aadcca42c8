// cdi-source-update-poller: the DataImportCron poller of registry sources.
//
// CDI's controller runs it from the importer image in a CronJob as
//   /usr/bin/cdi-source-update-poller -ns NS -cron NAME -url docker://... [-certdir /certs]
// with IMPORTER_ACCESS_KEY_ID, IMPORTER_SECRET_KEY and INSECURE_TLS in the
// environment. CDI's poller asks the registry for the digest of the URL's
// tag and patches the DataImportCron's annotations with it
// (tools/cdi-source-update-poller).
//
// In that pod (KUBERNETES_SERVICE_HOST and _PORT set, the service
// account's token and CA mounted, no -kubeconfig, -server or KUBECONFIG) it
// does the same natively: the digest through the registry client
// (pod/registry_poller.h: CDI's credentials, CA directory and
// insecure-registry handling), then one JSON patch of the DataImportCron's
// annotations through the API server (pod/kube_client.h), logging "Digest is
// ...", then "Digest updated" or "No digest update", as CDI's poller does.
// Anywhere else (a kubeconfig file, another API server) it hands the run over
// to CDI's poller in the overlay image (pod/handover.h), with the same
// arguments and environment. Flags of its own:
//   -handover-program PATH  CDI's poller (default /usr/libexec/cdi/cdi-source-update-poller)
//   -service-account-dir DIR  the service account mount (default
//                           /var/run/secrets/kubernetes.io/serviceaccount)
//   -version                prints "cdi-source-update-poller <version>" and exits 0
// Exit codes: 0 (also -h), 1 a mandatory flag is missing, the digest cannot
// be read ("Failed to get image digest: ..."), the DataImportCron cannot be
// read or patched ("Failed getting/patching DataImportCron ns/name: ..."), or
// outside a pod no poller to hand over to; 2 a bad flag; after a hand-over,
// CDI's poller's own.
#ifndef CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_
#define CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_

#include <string>
#include <vector>

namespace cdi::poller {

int RunSourceUpdatePoller(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace cdi::poller

#endif  // CDI_CMD_CDI_SOURCE_UPDATE_POLLER_SOURCE_UPDATE_POLLER_H_
