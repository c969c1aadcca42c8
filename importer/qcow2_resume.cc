#include "importer/qcow2_resume.h"

#include <vector>

#include "common/log.h"
#include "sources/http/range_read.h"

namespace cdi::importer {

Result<formats::Qcow2Resume> FetchQcow2Resume(const SourceSpec& spec, const Checkpoint& checkpoint,
                                              const CancelToken* cancel, uint64_t* bytes_fetched) {
  HttpResumePoint identity;
  identity.length = checkpoint.length;
  identity.etag = checkpoint.etag;
  identity.last_modified = checkpoint.last_modified;
  formats::Qcow2MetadataPlan plan(checkpoint.source_offset, checkpoint.length);
  uint64_t requests = 0;
  while (std::optional<formats::qcow2::Extent> wanted = plan.Wanted()) {
    CDI_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                         ReadImageRange(spec, identity, wanted->start, wanted->end, cancel));
    ++requests;
    *bytes_fetched += bytes.size();
    CDI_RETURN_IF_ERROR(plan.Give(wanted->start, bytes));
  }
  Logger()->info(
      "Fetched the qcow2 header and tables before byte {} again: {} bytes in {} "
      "ranged requests",
      checkpoint.source_offset, *bytes_fetched, requests);
  return plan.Take();
}

}  // namespace cdi::importer
