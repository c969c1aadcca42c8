#!/bin/sh
# Runs a fuzz target for a bounded time from its committed corpus
# (test/fuzz/corpus/<name>/) with its dictionary (test/fuzz/<name>.dict),
# where <name> is the binary's name without "_fuzz". Every corpus input runs
# first, so a regression input that crashes again fails at once. New inputs go
# to WORK_DIR/corpus; the committed corpus is only read (scripts/fuzz.sh
# merges new inputs into it).
# Usage: test/fuzz/run_fuzzer.sh FUZZER_BINARY WORK_DIR SECONDS [LIBFUZZER_FLAGS...]
# Exit status is the fuzzer's: non-zero when it found a crash or a contract
# violation (the reproducer is left in WORK_DIR as crash-*, timeout-* or oom-*).
set -eu
fuzzer=${1:?usage: $0 FUZZER WORK_DIR SECONDS [LIBFUZZER_FLAGS...]}
work=${2:?usage: $0 FUZZER WORK_DIR SECONDS [LIBFUZZER_FLAGS...]}
seconds=${3:-30}
shift 3 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$fuzzer")
name=${name%_fuzz}
corpus="$here/corpus/$name"
dict="$here/$name.dict"
[ -d "$corpus" ] || { echo "$0: no corpus at $corpus" >&2; exit 2; }
[ -f "$dict" ] || { echo "$0: no dictionary at $dict" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work/corpus" "$work/expanded"
# Inputs of megabytes (VHDX places its tables megabytes in) are committed
# xz-compressed as NAME.xz and expanded here.
for packed in "$corpus"/*.xz; do
  [ -e "$packed" ] || continue
  xz -dc "$packed" > "$work/expanded/$(basename "$packed" .xz)"
done
echo "$name: $(ls "$corpus" | wc -l) corpus inputs, $seconds s, dictionary $(basename "$dict")"
# -max_len: the committed inputs are a few KB; mutations may grow to twice the largest.
# A target whose inputs are larger passes its own -max_len (a later flag wins).
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=32768 \
  -dict="$dict" -artifact_prefix="$work/" "$@" "$work/corpus" "$corpus" "$work/expanded"
