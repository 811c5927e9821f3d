#!/bin/sh
# ctest: a training killed (SIGKILL) at random moments resumes with --resume to the very bits
# of an uninterrupted run. COMMAND is `train` (a tiny convnet on `synthetic`) or `enroll` (a
# new user embedded into the suite's protected convnet, each trial with its own copy of the
# registry), a checkpoint every epoch. Even trials kill after a random delay; odd ones after a
# random delay and then the moment the next checkpoint's model file is being written (its
# temporary file appears), inside the save, which a random delay alone would seldom hit. The
# delays are drawn from SEED.
#   usage: kill_train_test.sh BUILD_DIR [TRIALS [SEED [COMMAND]]]
set -eu
BUILD_DIR=$(cd "$1" && pwd)
TRIALS=${2:-20}
SEED=${3:-20}
COMMAND=${4:-train}
ACTIVEIP="$BUILD_DIR/cli/activeip"
FIXTURE=$(cd "$(dirname "$0")/fixtures/protected-v2" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SCHEDULE="--data synthetic --limit-train 128 --limit-test 32 --epochs 4 --batch 32 --seed 5 --threads 1"
case "$COMMAND" in
  train) ;;
  enroll)
    mkdir "$TMP/base"
    cp "$FIXTURE/m.safetensors" "$FIXTURE/owner.key" "$FIXTURE/users.db" "$TMP/base/"
    chmod 600 "$TMP/base/owner.key"
    "$ACTIVEIP" users add --registry "$TMP/base/users.db" dave >/dev/null ;;
  *) echo "kill test: COMMAND must be train or enroll, not '$COMMAND'" >&2; exit 2 ;;
esac
# Becomes COMMAND into folder $1 (--out $1/m.safetensors): run in the background, it is the
# process that $! names.
start() {
  d=$1
  shift
  if [ "$COMMAND" = train ]; then
    # shellcheck disable=SC2086
    exec "$ACTIVEIP" train --net convnet $SCHEDULE "$@" --out "$d/m.safetensors"
  fi
  [ -e "$d/users.db" ] || cp "$TMP/base/users.db" "$d/users.db"
  # shellcheck disable=SC2086
  exec "$ACTIVEIP" enroll --model "$TMP/base/m.safetensors" --key "$TMP/base/owner.key" --registry "$d/users.db" \
    --users dave --probes 8 $SCHEDULE "$@" --out "$d/m.safetensors"
}
# COMMAND to its end; exit status 3 (an enroll that fell short of embedding its user, which the
# suite's tiny runs may) counts as done.
run() { (start "$@") || [ $? -eq 3 ]; }
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
run "$TMP/ref" >"$TMP/ref/log" 2>&1 || {
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
  start "$d" --resume >"$d/killed.log" 2>&1 &
  pid=$!
  sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
  if [ $((i % 2)) -eq 1 ]; then  # until the model's temporary file appears: the model is being written
    while kill -0 "$pid" 2>/dev/null && ! writing_model "$d"; do :; done
  fi
  kill -KILL "$pid" 2>/dev/null || finished=$((finished + 1))
  wait "$pid" 2>/dev/null || true
  if writing_model "$d" || [ -e "$d/m.optim.safetensors.pending" ]; then in_save=$((in_save + 1)); fi
  if ! run "$d" --resume >"$d/resumed.log" 2>&1; then
    echo "kill test: trial $i (killed after ${delay} ms): the resumed $COMMAND failed:" >&2
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
    echo "kill test: trial $i: the resumed $COMMAND left its pending state behind" >&2
    exit 1
  fi
  exact=$((exact + 1))
  i=$((i + 1))
done
case "$resumed_from" in
  *[1-9]*) ;;
  *) echo "kill test: no trial resumed from a checkpoint (resumed from epochs:$resumed_from): nothing was tested" >&2
     exit 1 ;;
esac
echo "kill test: $exact of $TRIALS killed ${COMMAND}s resumed bit-identical to the uninterrupted run" \
  "(uninterrupted: ${span} ms; killed inside a save: $in_save; finished before the kill: $finished;" \
  "resumed from epochs:$resumed_from)"
