#!/bin/sh
# ctest: scripts/reproduce_paper.sh end to end on `synthetic` with a one-epoch convnet and
# 3 users, into a temporary folder: it must train both models, report, and append one
# well-formed row (under its header) to the results file it is given.
set -eu
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
BUILD_DIR=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BUILD_DIR=$BUILD_DIR EPOCHS=1 BATCH=64 USERS=3 COUNT=5 THREADS=2 OUT="$TMP/run" RESULTS="$TMP/results.md" \
  "$ROOT/scripts/reproduce_paper.sh" synthetic convnet cpu >"$TMP/log" 2>&1 || { cat "$TMP/log"; exit 1; }
grep -q '^## Reproduction runs' "$TMP/results.md"
rows=$(grep -c '^| synthetic | convnet | cpu | 1 |' "$TMP/results.md")
[ "$rows" -eq 1 ] || { echo "expected one row, found $rows:"; cat "$TMP/results.md"; exit 1; }
grep -q '| [0-9]/3 (' "$TMP/results.md" || { echo "no users column:"; cat "$TMP/results.md"; exit 1; }
for f in owner.key users.db baseline.safetensors protected.safetensors report.json; do
  [ -f "$TMP/run/$f" ] || { echo "missing $f"; exit 1; }
done
echo "reproduce_paper.sh: ok"
