#!/bin/sh
# ctest: a training killed (SIGKILL) at random moments resumes with --resume to the very bits
# of an uninterrupted run. A tiny convnet on `synthetic`, a checkpoint every epoch. Even
# trials kill after a random delay; odd ones after a random delay and then the moment the next
# checkpoint's model file is being written (its temporary file appears), inside the save, which
# a random delay alone would seldom hit. The delays are drawn from SEED.
#   usage: kill_train_test.sh BUILD_DIR [TRIALS [SEED]]
set -eu
BUILD_DIR=$(cd "$1" && pwd)
TRIALS=${2:-20}
SEED=${3:-20}
ACTIVEIP="$BUILD_DIR/cli/activeip"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

COMMON="--net convnet --data synthetic --limit-train 128 --limit-test 32 --epochs 4 --batch 32 --seed 5 --threads 1"
now_ms() { date +%s%3N; }
# SHA-256 of a safetensors file's tensor bytes (after the 8-byte length and the header).
tensor_digest() {
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1" | sha256sum | cut -d' ' -f1
}
# Whether folder $1 holds a temporary file of the model (write_file_atomic's .NAME.tmp-…).
writing_model() {
  set -- "$1"/.m.safetensors.tmp-*
  [ -e "$1" ]
}
# A number in [0, $2) from trial $1's seed.
draw() { awk -v s="$SEED" -v t="$1" -v n="$2" 'BEGIN { srand(s * 1000 + t); print int(rand() * n) }'; }

mkdir "$TMP/ref"
t0=$(now_ms)
# shellcheck disable=SC2086
"$ACTIVEIP" train $COMMON --out "$TMP/ref/m.safetensors" >"$TMP/ref/log" 2>&1 || {
  cat "$TMP/ref/log" >&2; exit 1; }
span=$(($(now_ms) - t0 + 1))
want="$(tensor_digest "$TMP/ref/m.safetensors") $(tensor_digest "$TMP/ref/m.optim.safetensors")"

exact=0 in_save=0 finished=0
resumed_from=""
i=1
while [ "$i" -le "$TRIALS" ]; do
  d="$TMP/t$i"
  mkdir "$d"
  # Within the run (a kill after its end would test nothing); the save trials wait further.
  if [ $((i % 2)) -eq 1 ]; then delay=$(draw "$i" $((span * 3 / 4))); else delay=$(draw "$i" $((span * 9 / 10))); fi
  # shellcheck disable=SC2086
  "$ACTIVEIP" train $COMMON --resume --out "$d/m.safetensors" >"$d/killed.log" 2>&1 &
  pid=$!
  sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
  if [ $((i % 2)) -eq 1 ]; then  # until the model's temporary file appears: the model is being written
    while kill -0 "$pid" 2>/dev/null && ! writing_model "$d"; do :; done
  fi
  kill -KILL "$pid" 2>/dev/null || finished=$((finished + 1))
  wait "$pid" 2>/dev/null || true
  if writing_model "$d" || [ -e "$d/m.optim.safetensors.pending" ]; then in_save=$((in_save + 1)); fi
  # shellcheck disable=SC2086
  if ! "$ACTIVEIP" train $COMMON --resume --out "$d/m.safetensors" >"$d/resumed.log" 2>&1; then
    echo "kill test: trial $i (killed after ${delay} ms): the resumed training failed:" >&2
    cat "$d/resumed.log" >&2
    exit 1
  fi
  from=$(sed -n 's/^resuming .* at epoch \([0-9]*\) of .*/\1/p' "$d/resumed.log")
  resumed_from="$resumed_from ${from:-0}"
  got="$(tensor_digest "$d/m.safetensors") $(tensor_digest "$d/m.optim.safetensors")"
  if [ "$got" != "$want" ]; then
    echo "kill test: trial $i (killed after ${delay} ms, resumed from epoch ${from:-0}): model and state differ" \
      "from the uninterrupted run's" >&2
    exit 1
  fi
  if [ -e "$d/m.optim.safetensors.pending" ]; then
    echo "kill test: trial $i: the resumed run left its pending state behind" >&2
    exit 1
  fi
  exact=$((exact + 1))
  i=$((i + 1))
done
echo "kill test: $exact of $TRIALS killed trainings resumed bit-identical to the uninterrupted run" \
  "(uninterrupted: ${span} ms; killed inside a save: $in_save; finished before the kill: $finished;" \
  "resumed from epochs:$resumed_from)"
