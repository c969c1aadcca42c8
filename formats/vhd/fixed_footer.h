// Fixed VHD images, recognised at the end of the stream: a fixed VHD is the
// guest's bytes followed by a 512-byte footer, with nothing at its start that
// detection could see, so every raw stream is read through this decoder.
//
// It is the raw decoder (formats/raw_decoder.h) with the last 512 bytes of the
// stream held back: every other byte goes to the GuestWriter as the raw
// decoder hands it over, without a copy (a chunk may become two Write()s: the
// part of the held-back tail it pushes out, then its own bytes). At Finish()
// the held-back bytes are checked: a valid VHD footer (cookie, checksum, disk
// type 2) whose current size equals the number of bytes before it makes the
// image a fixed VHD: format "vhd", details subformat "fixed", current size
// and creator, and the footer is not written. Anything else is raw data and
// is written then.
//
// The virtual size of a fixed VHD is the footer's current size. When the
// stream's length was known, the raw decoder announced it to the GuestWriter
// at the first byte, before the footer could be seen: the size is then lowered
// with GuestWriter::Shrink() to the footer's current size. Only a writer that
// cannot shrink gets the footer's 512 bytes Zero()ed instead, the guest one
// sector larger than the footer says (details note it).
//
// A stream whose last 512 bytes are a DMG trailer (formats/foreign.h) is
// refused at Finish() (kUnsupported, by name); what went before was written.
//
// Errors: those of the raw decoder, and the GuestWriter's. Memory: 512 bytes.
// Thread-safety: none.
#ifndef CDI_FORMATS_VHD_FIXED_FOOTER_H_
#define CDI_FORMATS_VHD_FIXED_FOOTER_H_

#include <memory>

#include "formats/decoder.h"
#include "formats/raw_decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder.
std::unique_ptr<Decoder> MakeRawOrFixedVhdDecoder(GuestWriter* writer,
                                                  const DecoderOptions& options,
                                                  RawContent content = RawContent::kDisk);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VHD_FIXED_FOOTER_H_
