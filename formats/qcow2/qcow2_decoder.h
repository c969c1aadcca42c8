// Streaming qcow2 decoder: container bytes in file order in, guest writes out.
//
// The image is read once, front to back. The header names the L1 table; the L1
// table names the L2 tables; each L2 table maps guest clusters to host
// clusters. A data cluster whose mapping is known when it passes is written at
// once (inflated first when compressed); one that passes earlier is spooled
// (memory, then an unlinked scratch file) until its L2 table arrives.
// Unallocated and zero clusters become GuestWriter::Zero; data clusters are
// written as they are, zero bytes and all, for the writer to find zero blocks
// in (stretches the spool held as all-zero come back as Zero, since it kept
// no bytes for them). Clusters no active table can refer to (refcount
// structures, free clusters, snapshot-only data once the last L2 table has
// passed) are dropped.
//
// Refused before any write: backing files, external data files, encryption,
// the corrupt bit, unknown incompatible features, unknown compression types,
// and headers outside qemu's limits. Every table entry is checked before use;
// a truncated image is an error at Finish().
//
// ResumePoint(): the input offset a later import may continue from (see
// resume_point.h), after the compressed clusters in flight were written.
//
// Describe() details: "version", "cluster size", "compression type",
// "virtual size", "extended L2" (after Begin); "spooling" ("needed" or
// "not needed"), "spooled bytes", "spooled bytes on disk", "peak memory"
// (after Finish).
#ifndef CDI_FORMATS_QCOW2_QCOW2_DECODER_H_
#define CDI_FORMATS_QCOW2_QCOW2_DECODER_H_

#include <memory>

#include "formats/decoder.h"
#include "formats/qcow2/resume_point.h"

namespace cdi::formats {

// `writer` must outlive the decoder. Feed() and Finish() must be called from
// one thread at a time; every GuestWriter call comes from that thread.
// Compressed clusters are inflated on options.threads worker threads.
std::unique_ptr<Decoder> MakeQcow2Decoder(GuestWriter* writer, const DecoderOptions& options);

// A decoder that continues an image an earlier import decoded up to
// resume.at (resume_point.h): it is fed the image from resume.at on, and
// reports the guest ranges of the host bytes before it with
// GuestWriter::Kept. options.container_size is the whole image's length.
// Its ResumePoint() works as any qcow2 decoder's.
std::unique_ptr<Decoder> MakeResumedQcow2Decoder(GuestWriter* writer, const DecoderOptions& options,
                                                 Qcow2Resume resume);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_QCOW2_QCOW2_DECODER_H_
