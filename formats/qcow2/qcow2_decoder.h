// Streaming qcow2 decoder: container bytes in file order in, guest writes out.
#ifndef CDI_FORMATS_QCOW2_QCOW2_DECODER_H_
#define CDI_FORMATS_QCOW2_QCOW2_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder.
std::unique_ptr<Decoder> MakeQcow2Decoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_QCOW2_QCOW2_DECODER_H_
