// Placeholder until the sources land.
#include "importer/sources/source.h"
