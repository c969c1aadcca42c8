// Placeholder until the pipeline lands.
#include "cdi/import.h"

namespace cdi {
std::string_view Version() { return "0.1.0"; }
}  // namespace cdi
