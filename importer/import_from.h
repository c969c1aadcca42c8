// Import() over a source the caller opened: an upload server's request body,
// a clone stream. Everything else is Import()'s: the spec's targets, checksum,
// content type and memory budget, the hooks, the result and the cleanup on
// failure. spec.source.url is not read (it may be empty).
#ifndef CDI_IMPORTER_IMPORT_FROM_H_
#define CDI_IMPORTER_IMPORT_FROM_H_

#include <memory>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

struct ImportFromOptions {
  // The source is a disk's bytes as they are (a block device's clone stream):
  // written raw, no wrapper or format looked for. Disk images only.
  bool raw_only = false;
};

// Reads `source` once, front to back, as Import() reads the source it opens.
// The targets are opened before the first byte is read, so a target that
// cannot be used fails before the source is touched.
Result<ImportResult> ImportFrom(const ImportSpec& spec, std::unique_ptr<ByteSource> source,
                                const ImportHooks& hooks = {},
                                const ImportFromOptions& options = {});

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_IMPORT_FROM_H_
