#!/bin/sh
# Fuzzes the parsers: builds the libFuzzer harnesses of tests/fuzz with clang, AddressSanitizer
# (leaks included) and UBSan in build-fuzz/ (-DACTIVEIP_FUZZ=ON), then runs each target for
# DURATION seconds (default 60) on a corpus in build-fuzz/corpus/NAME seeded from
# tests/fixtures/fuzz/NAME. Prints one line per target (executions, corpus size) and fails
# when a target found a crash, leak, timeout or UB: the input is left in
# build-fuzz/artifacts/NAME/; once the defect is fixed it goes into tests/fixtures/fuzz/NAME,
# which ctest replays in every build.
#   usage: scripts/fuzz.sh [DURATION [TARGET…]]   (targets: safetensors checkpoint_meta cifar
#          idx key token registry image; FUZZ_RUNS=N stops each target after N executions instead,
#          DURATION still bounding it; FUZZ_BUILD_DIR, FUZZ_JOBS and FUZZ_CMAKE_ARGS override the
#          build folder, the build's parallelism and add configure options)
set -eu
cd "$(dirname "$0")/.."
DURATION=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-safetensors checkpoint_meta cifar idx key token registry image}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}

mkdir -p "$BUILD"
# shellcheck disable=SC2086
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DACTIVEIP_FUZZ=ON -DACTIVEIP_CUDA=OFF -DACTIVEIP_NATIVE=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo ${FUZZ_CMAKE_ARGS:-} >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log" >&2; exit 1; }
build_targets=""
for t in $TARGETS; do build_targets="$build_targets --target fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$JOBS" $build_targets >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log" >&2; exit 1; }

# The harnesses write each input to a file; on a tmpfs that costs no disk writes or syncs.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
failed=""
for t in $TARGETS; do
  corpus="$BUILD/corpus/$t"
  artifacts="$BUILD/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp -n tests/fixtures/fuzz/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$BUILD/fuzz_$t.log"
  status=0
  # -timeout: an input that takes over 10 s is a hang; -rss_limit_mb: over 2 GB is a leak or a bomb.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$BUILD/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$DURATION" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  echo "fuzz $t: ${runs:-?} executions (${rate:-?}/s), corpus $(ls "$corpus" | wc -l) inputs, exit $status"
  if [ "$status" -ne 0 ]; then
    failed="$failed $t"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$log" | head -5 >&2 || true
    ls "$artifacts" >&2
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: defects found by:$failed (inputs in $BUILD/artifacts/, logs in $BUILD/fuzz_*.log)" >&2
  exit 1
fi
