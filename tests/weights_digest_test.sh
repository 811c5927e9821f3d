#!/bin/sh
# ctest: fixed-seed trainings give the weights and optimizer state recorded in
# tests/fixtures/weights_digests.txt, bit for bit: resnet20 on `synthetic`, 2 epochs, plain,
# protected under scheme v1 and under v2 (the suite's fixture key, alice and bob) and with SAM;
# and a convnet checkpoint of an earlier build resumed from its first epoch to its second. The digest is SHA-256 of a
# checkpoint's tensor bytes (everything after the safetensors header, which holds metadata
# only), for the model and its .optim.safetensors. Floating-point results depend on the
# compiler, its flags and the CPU it targets, so the file keys each line by the build's
# flavour (argument 2); a flavour without a line is skipped (77), naming the lines to add, and
# a training without a line of a flavour that has others is named and not compared.
#   usage: weights_digest_test.sh BUILD_DIR FLAVOUR [--print]
set -eu
BUILD_DIR=$(cd "$1" && pwd)
FLAVOUR=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ACTIVEIP="$BUILD_DIR/cli/activeip"
DIGESTS="$ROOT/tests/fixtures/weights_digests.txt"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cp "$ROOT/tests/fixtures/protected/owner.key" "$ROOT/tests/fixtures/protected/users.db" "$TMP/"
chmod 600 "$TMP/owner.key" "$TMP/users.db"

# SHA-256 of a safetensors file's tensor bytes: skip the 8-byte header length and the header.
tensor_digest() {
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1" | sha256sum | cut -d' ' -f1
}

COMMON="--net resnet20 --data synthetic --limit-train 512 --limit-test 200 --epochs 2 --batch 64
  --nesterov --seed 7 --threads 2"
train() {  # name, extra options; exit 3 (protection incomplete) is a finished training too
  name=$1; shift
  status=0
  # shellcheck disable=SC2086
  (cd "$TMP" && "$ACTIVEIP" train $COMMON --out "$name.safetensors" "$@") >"$TMP/$name.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
    echo "weights digest: training '$name' failed (exit $status)" >&2; cat "$TMP/$name.log" >&2; exit 1
  fi
  echo "$FLAVOUR $name $(tensor_digest "$TMP/$name.safetensors") $(tensor_digest "$TMP/$name.optim.safetensors")"
}

{
  train plain
  train protected --protect --scheme v1 --key owner.key --registry users.db --probes 20
  train protected-v2 --protect --scheme v2 --key owner.key --registry users.db --probes 20
  train sam --sam 0.05
  # tests/fixtures/resume: a convnet after epoch 1 of 2, written by an earlier build, resumed.
  cp "$ROOT/tests/fixtures/resume/m.safetensors" "$TMP/resume.safetensors"
  cp "$ROOT/tests/fixtures/resume/m.optim.safetensors" "$TMP/resume.optim.safetensors"
  COMMON="--net convnet --data synthetic --limit-train 2048 --limit-test 200 --epochs 2 --batch 64
    --nesterov --seed 7 --threads 1"
  train resume --resume
} >"$TMP/got"

if [ "${3:-}" = "--print" ]; then cat "$TMP/got"; exit 0; fi
if ! grep -q "^$FLAVOUR " "$DIGESTS"; then
  echo "skipped: no digests recorded for flavour '$FLAVOUR'; lines for $DIGESTS:"
  cat "$TMP/got"
  exit 77
fi
grep "^$FLAVOUR " "$DIGESTS" | sort >"$TMP/want"
# Compare the trainings the flavour records; name the ones it does not.
awk 'NR == FNR { recorded[$2] = 1; next } ($2 in recorded)' "$TMP/want" "$TMP/got" | sort >"$TMP/compared"
awk 'NR == FNR { recorded[$2] = 1; next } !($2 in recorded)' "$TMP/want" "$TMP/got" >"$TMP/unrecorded"
if ! diff "$TMP/want" "$TMP/compared"; then
  echo "weights digest: the trainings above (>) differ from the recorded ones (<) for flavour '$FLAVOUR'"
  exit 1
fi
if [ -s "$TMP/unrecorded" ]; then
  echo "weights digest: not recorded for flavour '$FLAVOUR' (not compared); lines for $DIGESTS:"
  cat "$TMP/unrecorded"
fi
echo "weights digest: $(wc -l <"$TMP/want") trainings bit-identical to the recorded digests ($FLAVOUR)"
