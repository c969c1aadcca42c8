#!/usr/bin/env bash
# Builds the unit suites that run threads with ThreadSanitizer into
# build-tsan/ and runs their concurrent tests: the HTTP source's transfer
# thread and its buffer, the connections of a ranged download, concurrent
# imports in one process, qcow2's inflate workers, the direct writer's
# threads, the upload server's read-ahead, the metrics and TLS servers and
# the target fan-out. Run it after changing any of them (CI leaves it out to
# stay within 25 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
# xz's decoder threads live inside liblzma, which TSan does not see into:
# formats_test is not built here, nor the e2e suite (its binaries' threads are
# the ones the unit suites run in-process).
concurrent='^(TransferBufferTest|ConcurrentImportTest|HttpSourceTest|RangeFetchTest|FaultTest|ResumeTest'
concurrent+='|ImageResumeTest|ZstdResumeTest|XzResumeTest|ReadAheadTest'
concurrent+='|CorpusOneByteTest'
concurrent+='|Qcow2/CorpusTest[.]DecodesLikeQemuImg/((zlib|zstd)_cluster_65536|compressed_)'
concurrent+='|FileTargetTest[.](LongRunsBypassThePageCache|StagedRunsOfAnyShapeReadBackExactly)'
concurrent+='|BlockTargetDirectTest|FailingDeviceTest|MetricsServerTest|MetricsServer[.]|ConnectionTest'
concurrent+='|TargetSinkTest)'
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDI_WERROR=ON -DCDI_SANITIZE_THREAD=ON \
  -DCDI_PRECOMPILE_HEADERS=ON >/dev/null
cmake --build build-tsan -j"$(nproc)" --target sources_test qcow2_test pvc_test pod_test tls_test \
  importer_test uploadserver_test
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/test/tsan.supp" \
  ctest --test-dir build-tsan --output-on-failure -j2 -R "$concurrent"

