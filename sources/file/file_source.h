// Local sources: a regular file, a block device, or standard input.
#ifndef CDI_SOURCES_FILE_FILE_SOURCE_H_
#define CDI_SOURCES_FILE_FILE_SOURCE_H_

#include <memory>
#include <string>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

// Opens a regular file (size from fstat) or a block device (size from
// BLKGETSIZE64). Errors: kInvalidArgument naming the path when it does not
// exist, cannot be opened for lack of permission, or is neither a regular file
// nor a block device; kIo for other failures. A file that ends before its size
// at open is a kIo error, never a short success.
Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path,
                                                   const CancelToken* cancel);

// Reads standard input (file descriptor 0, left open when the source goes).
// Its size is known when it is a regular file (`< image.qcow2`), unknown for
// a pipe. A Read() waiting on a pipe returns kCancelled within a second of
// `cancel` being cancelled.
Result<std::unique_ptr<ByteSource>> OpenStdinSource(const CancelToken* cancel);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_FILE_FILE_SOURCE_H_
