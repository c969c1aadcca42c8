#include "formats/qcow2/qcow2_decoder.h"

namespace cdi::formats {
namespace {

// Refuses qcow2 by name until the streaming decoder lands.
class UnsupportedQcow2 : public Decoder {
 public:
  Status Feed(std::span<const uint8_t>) override {
    return UnsupportedError(
        "qcow2 images are not supported yet; convert the image to raw with "
        "'qemu-img convert -O raw' and import that");
  }
  Status Finish() override { return Feed({}); }
  ImageDescription Describe() const override { return {.format = "qcow2"}; }
};

}  // namespace

std::unique_ptr<Decoder> MakeQcow2Decoder(GuestWriter*, const DecoderOptions&) {
  return std::make_unique<UnsupportedQcow2>();
}

}  // namespace cdi::formats
