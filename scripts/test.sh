#!/bin/sh
# Builds activeip and runs the test suite: scripts/test.sh [extra cmake options].
# BUILD_DIR (default: build) selects the build folder. GPU tests are reported as skipped
# on a machine without a usable GPU.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$BUILD_DIR" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
