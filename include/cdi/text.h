// Text the faces and operators show: sizes, durations, JSON strings, and the
// base64 of Kubernetes Secrets.
#ifndef CDI_TEXT_H_
#define CDI_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace cdi {

// "0 B", "512 B", "1.5 KiB", "10.0 GiB".
std::string HumanBytes(uint64_t bytes);
// "0:07", "1:02:03".
std::string HumanDuration(double seconds);
// A JSON string literal, quotes included.
std::string JsonString(std::string_view text);
// Decodes standard base64 (whitespace ignored, padding optional); false on bad input.
bool DecodeBase64(std::string_view text, std::string* out);

}  // namespace cdi

#endif  // CDI_TEXT_H_
