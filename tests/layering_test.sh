#!/bin/sh
# ctest: the include layering fails the build. On a scratch copy of the sources, configured
# on its own, the build's first step (target activeip_layering) passes as the tree is, and
# fails once a header includes against the layering — kernels including the engine, the
# engine including fingerprint, a test including the CLI — naming the file and the rule.
#   usage: layering_test.sh CMAKE
set -eu
CMAKE=${1:-cmake}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "layering test: $1"; [ -f "$TMP/log" ] && tail -30 "$TMP/log"; exit 1; }

mkdir "$TMP/src"
for d in base kernels engine nets fingerprint attacks cli bench tests cmake; do
  cp -R "$ROOT/$d" "$TMP/src/$d"
done
cp "$ROOT/CMakeLists.txt" "$TMP/src/"
rm -rf "$TMP/src/tests/fixtures"

"$CMAKE" -S "$TMP/src" -B "$TMP/build" -DACTIVEIP_CUDA=OFF -DBUILD_TESTING=OFF >"$TMP/log" 2>&1 ||
  fail "the scratch copy does not configure"
"$CMAKE" --build "$TMP/build" --target activeip_layering >"$TMP/log" 2>&1 || fail "the tree as it is fails the check"

# breaks FILE LINE NEEDLE: FILE gets LINE, and the check must fail naming NEEDLE; then FILE is restored.
breaks() {
  cp "$TMP/src/$1" "$TMP/saved"
  printf '%s\n' "$2" >>"$TMP/src/$1"
  if "$CMAKE" --build "$TMP/build" --target activeip_layering >"$TMP/log" 2>&1; then
    fail "$1 with '$2' still builds"
  fi
  grep -qF "$3" "$TMP/log" || fail "the failure does not say: $3"
  cp "$TMP/saved" "$TMP/src/$1"
}
breaks kernels/conv2d.h '#include "engine/core/tensor.h"' 'kernels/conv2d.h: #include "engine/core/tensor.h": kernels may not include engine/core'
breaks engine/nn/layer.h '#include "fingerprint/key.h"' 'engine/nn/layer.h: #include "fingerprint/key.h": engine/nn may not include fingerprint'
breaks engine/core/tensor.h '#include "engine/nn/network.h"' 'engine/core/tensor.h: #include "engine/nn/network.h": engine/core may not include engine/nn'
breaks tests/test_util.h '#include "cli/commands.h"' 'tests/test_util.h: #include "cli/commands.h": tests may not include cli'
breaks nets/nets.h '#include "attacks/prune.h"' 'nets/nets.h: #include "attacks/prune.h": nets may not include attacks'
breaks fingerprint/key.h '#include "key.h"' 'fingerprint/key.h: #include "key.h" names no room'

# Restored, it builds again.
"$CMAKE" --build "$TMP/build" --target activeip_layering >"$TMP/log" 2>&1 || fail "the restored tree fails the check"
echo "layering test: 6 broken includes each failed the build, naming the file and the rule"
