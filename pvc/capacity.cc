// Placeholder until the pvc module lands.
#include "pvc/capacity.h"
