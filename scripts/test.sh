#!/usr/bin/env bash
# Installs what the tests need (Debian packages), builds, and runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh
# Two tests a core: most of them spend their time waiting on the servers and
# processes they start.
ctest --test-dir build --output-on-failure -j"$(( $(nproc) * 2 ))" "$@"
