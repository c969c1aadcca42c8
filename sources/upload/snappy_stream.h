// A snappy-framed stream (the framing format of google/snappy's
// framing_format.txt, as github.com/golang/snappy's buffered writer and
// CDI's cloner write it), decoded into the bytes it frames: what a
// host-assisted clone sends an upload server.
//
// Chunks: the stream identifier ("sNaPpY", first, may repeat), compressed
// and uncompressed data (each at most 65536 bytes once uncompressed, each
// with the masked CRC-32C of its uncompressed bytes, which is verified),
// padding and reserved skippable chunks (skipped). Refused as
// kCorruptImage, naming the offset in the framed stream: a stream that does
// not open with the identifier, a reserved unskippable chunk type, a chunk
// that does not decompress or whose CRC does not match, a stream cut inside a
// chunk.
#ifndef CDI_SOURCES_UPLOAD_SNAPPY_STREAM_H_
#define CDI_SOURCES_UPLOAD_SNAPPY_STREAM_H_

#include <memory>

#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

// The bytes `framed` frames. size() is unknown; Describe() is framed's.
std::unique_ptr<ByteSource> OpenSnappyFramedSource(std::unique_ptr<ByteSource> framed);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_UPLOAD_SNAPPY_STREAM_H_
