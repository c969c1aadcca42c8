#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin/), tests included.
# The configuration is the Containerfile's (Release, warnings as errors), so
# the tests run what the image ships; CDI_BUILD_TYPE=RelWithDebInfo (or Debug)
# builds with debugging symbols instead. Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE="${CDI_BUILD_TYPE:-Release}" -DCDI_WERROR=ON \
  -DCDI_PRECOMPILE_HEADERS=ON "$@" >/dev/null
cmake --build build -j"$(nproc)"
