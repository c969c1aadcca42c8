// cdi-source-update-poller: the DataImportCron poller of registry sources
// (cmd/cdi-source-update-poller/source_update_poller.h).
#include <string>
#include <vector>

#include "cmd/cdi-source-update-poller/source_update_poller.h"

int main(int argc, char** argv) {
  return cdi::poller::RunSourceUpdatePoller(argv[0],
                                            std::vector<std::string>(argv + 1, argv + argc));
}
