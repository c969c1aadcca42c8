#!/usr/bin/env bash
# Fuzzes each target for a while from its committed corpus and merges the
# inputs that reach new code back into test/fuzz/corpus/<target>/, keeping
# the smallest set of merged inputs that reaches every edge.
#
# Usage: scripts/fuzz.sh [-j WORKERS] [--no-merge] SECONDS [TARGET...]
#   SECONDS      how long each target runs (3600: an hour each)
#   TARGET       pipeline, qcow2, vdi, vhd, vhdx, vmdk (default: all, one after another)
#   -j WORKERS   libFuzzer processes per target (-fork), default 1
#   --no-merge   leave the committed corpus as it is
#
# Builds the fuzz configuration (clang, libFuzzer, ASan, UBSan) into
# build-fuzz/ first. A run that finds a crash, a timeout or an out-of-memory
# input leaves it as build-fuzz/fuzz-out/<target>/crash-* (timeout-*, oom-*),
# prints how to reproduce it, and makes the script exit 1 once every target
# has run. Fix it, then commit the input as test/fuzz/corpus/<target>/regress-<what>:
# CI runs every corpus input before it fuzzes.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=1
merge=1
while [ $# -gt 0 ]; do
  case $1 in
    -j) workers=$2; shift 2 ;;
    --no-merge) merge=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
seconds=${1:?usage: scripts/fuzz.sh [-j WORKERS] [--no-merge] SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pipeline qcow2 vdi vhd vhdx vmdk)

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDI_FUZZ=ON -DCDI_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_targets

fork=()
[ "$workers" -gt 1 ] && fork=(-fork="$workers" -ignore_crashes=1)
failed=()
mkdir -p build-fuzz/fuzz-out
for target in "${targets[@]}"; do
  fuzzer=build-fuzz/bin/${target}_fuzz
  work=build-fuzz/fuzz-out/$target
  corpus=test/fuzz/corpus/$target
  echo "::: $target for $seconds s"
  if ! test/fuzz/run_fuzzer.sh "$fuzzer" "$work" "$seconds" "${fork[@]}" >"$work.log" 2>&1; then
    failed+=("$target")
  fi
  grep -E '^#[0-9]+ +DONE|^Done [0-9]+ runs' "$work.log" | tail -1 || true
  for found in "$work"/crash-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$found" ] || continue
    failed+=("$target")
    echo "$target: $found (log: $work.log); reproduce with: $fuzzer $found"
  done
  if [ "$merge" = 1 ]; then
    # The smallest set of inputs, old and new, that reaches every edge the
    # corpus and this run reached (-use_counters=0: an edge counts once,
    # however often an input takes it), replaces the merged inputs (named by
    # their SHA-1). Seeds and regress-* inputs stay as they are.
    before=$(ls "$corpus" | wc -l)
    rm -rf "$work/minimized"
    mkdir -p "$work/minimized"
    "$fuzzer" -merge=1 -use_counters=0 -timeout=20 -rss_limit_mb=2048 "$work/minimized" \
      "$corpus" "$work/corpus" "$work/expanded" >"$work.merge.log" 2>&1
    find "$corpus" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}(\.xz)?' -delete
    named=$( (find "$corpus" -maxdepth 1 -type f ! -name '*.xz' -exec sha1sum {} +;
              for p in "$corpus"/*.xz; do [ -e "$p" ] && xz -dc "$p" | sha1sum; done) | cut -d' ' -f1)
    for input in "$work/minimized"/*; do
      grep -qx "$(basename "$input")" <<<"$named" && continue
      # Inputs over 64 KiB are kept xz-compressed (run_fuzzer.sh expands them).
      if [ "$(stat -c %s "$input")" -gt 65536 ]; then
        xz -9 -c "$input" > "$corpus/$(basename "$input").xz"
      else
        cp "$input" "$corpus/"
      fi
    done
    echo "$target: corpus $before -> $(ls "$corpus" | wc -l) inputs"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')"
  exit 1
fi
