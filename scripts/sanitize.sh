#!/usr/bin/env bash
# Builds every suite, unit and e2e, with AddressSanitizer + UndefinedBehavior-
# Sanitizer into build-asan/ and runs them all: the e2e suites then run the
# sanitized binaries (cdi-image, cdi-importer, cdi-uploadserver). CI runs the
# unit suites this way; run this before changing the binaries' own code.
# Extra arguments go to ctest (for example -R UploadServer).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCDI_WERROR=ON -DCDI_SANITIZE=ON \
  -DCDI_PRECOMPILE_HEADERS=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 "$@"
