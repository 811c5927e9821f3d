#!/bin/sh
# ctest: scripts/reproduce_paper.sh end to end on `synthetic` with a one-epoch convnet and
# 3 users, into a temporary folder: it must train both models, report, and append one
# well-formed row (under its header) to the results file it is given. PROTECT_OPTS reaches
# the protected training only, and the row names it. A rerun after one more user is registered
# skips both finished trainings (the new user is not embedded) and appends a second row.
set -eu
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
BUILD_DIR=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# reproduce LOG: one run of the script into $TMP/run; PROTECT_OPTS with a doubled space, which
# the row's net cell names with single ones.
reproduce() {
  BUILD_DIR=$BUILD_DIR PROTECT_OPTS="--sam 0.01  --sam-ascent extra" EPOCHS=1 BATCH=64 USERS=3 COUNT=5 THREADS=2 \
    OUT="$TMP/run" RESULTS="$TMP/results.md" "$ROOT/scripts/reproduce_paper.sh" synthetic convnet cpu >"$1" 2>&1 ||
    { cat "$1"; exit 1; }
}
reproduce "$TMP/log"
grep -q '^## Reproduction runs' "$TMP/results.md"
rows=$(grep -c '^| synthetic | convnet (--sam 0.01 --sam-ascent extra) | cpu | 1 |' "$TMP/results.md")
[ "$rows" -eq 1 ] || { echo "expected one row, found $rows:"; cat "$TMP/results.md"; exit 1; }
grep -q '| [0-9]/3 (' "$TMP/results.md" || { echo "no users column:"; cat "$TMP/results.md"; exit 1; }
for f in owner.key users.db baseline.safetensors protected.safetensors report.json; do
  [ -f "$TMP/run/$f" ] || { echo "missing $f"; exit 1; }
done
grep -q '"sam"' "$TMP/run/protected.jsonl" || { echo "--sam did not reach the protected training"; exit 1; }
if grep -q '"sam"' "$TMP/run/baseline.jsonl"; then echo "--sam reached the baseline"; exit 1; fi
"$BUILD_DIR/cli/activeip" users add --registry "$TMP/run/users.db" user04 >/dev/null
sum=$(md5sum "$TMP/run/protected.safetensors")
reproduce "$TMP/log2"
[ "$(grep -c '^skip: .* has all 1 epochs' "$TMP/log2")" -eq 2 ] || { echo "the rerun did not skip both trainings:"; cat "$TMP/log2"; exit 1; }
[ "$(md5sum "$TMP/run/protected.safetensors")" = "$sum" ] || { echo "the rerun changed the protected model"; exit 1; }
rows=$(grep -c '^| synthetic | convnet (--sam 0.01 --sam-ascent extra) | cpu | 1 | .* | [0-9]/3 (' "$TMP/results.md")
[ "$rows" -eq 2 ] || { echo "expected two rows over the 3 embedded users, found $rows:"; cat "$TMP/results.md"; exit 1; }
echo "reproduce_paper.sh: ok"
