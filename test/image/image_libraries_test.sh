#!/usr/bin/env bash
# ctest `image_libraries`: the runtime stage of Containerfile and of
# Containerfile.cdi-overlay installs every shared library that the binaries
# they ship load (scripts/check-image-libraries.sh), and the check does fail
# when a package is missing from a runtime stage.
#
#   test/image/image_libraries_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
source_dir=$1
bin_dir=$2
check=$source_dir/scripts/check-image-libraries.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$check" "$bin_dir" "$source_dir/Containerfile" "$source_dir/Containerfile.cdi-overlay"

# The same Containerfiles without libyaml-cpp0.7 in the runtime stage (the
# library cdi-image loads for manifests): each must fail, naming it.
for file in Containerfile Containerfile.cdi-overlay; do
  awk '/^FROM/ { last = NR } { line[NR] = $0 } END {
         for (i = 1; i <= NR; i++) { if (i > last) gsub(/ libyaml-cpp0\.7/, "", line[i]); print line[i] } }' \
    "$source_dir/$file" >"$work/$file"
  if out=$("$check" "$bin_dir" "$work/$file" 2>&1); then
    echo "FAIL: the check passed $file without libyaml-cpp0.7 in its runtime stage:" >&2
    echo "$out" >&2
    exit 1
  fi
  if ! grep -q "cdi-image loads libyaml-cpp.so.0.7 from package libyaml-cpp0.7, which the runtime stage does not install" <<<"$out"; then
    echo "FAIL: the check did not name the missing package for $file:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$file without libyaml-cpp0.7: refused as expected"
done
echo "image_libraries: passed"
