#!/bin/sh
# Reproduces a row of the paper's table: scripts/reproduce_paper.sh DATASET NET DEVICE
# Trains the baseline and the protected model with the same seed and schedule, registers
# $USERS users (default 20), runs `activeip report`, and appends the row to
# docs/results.md. Reruns continue where a run stopped (--resume), and skip the training of a
# model whose checkpoint already holds all $EPOCHS epochs (users registered since then stay out of it).
# Environment: EPOCHS (40), BATCH (128), LR (0.1), SCHEDULE (onecycle), SEED (1), THREADS,
# USERS (20), COUNT (forged fingerprints, 1000), DATA_DIR (the dataset's default), OUT (runs/paper/DATASET-NET-DEVICE),
# BUILD_DIR (build), RESULTS (docs/results.md), PROTECT_OPTS (more `train` options for the
# protected model only, e.g. "--sam 0.01 --sam-ascent extra"; the row's net cell names them).
set -eu
if [ $# -ne 3 ]; then
  echo "usage: $0 DATASET NET DEVICE   (e.g. $0 cifar10 resnet20 cpu)" >&2
  exit 2
fi
DATASET=$1 NET=$2 DEVICE=$3
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ACTIVEIP="$BUILD_DIR/cli/activeip"
[ -x "$ACTIVEIP" ] || { echo "$ACTIVEIP is missing: build first (scripts/test.sh or cmake --build $BUILD_DIR)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$0 needs python3 to write the results row" >&2; exit 1; }
EPOCHS=${EPOCHS:-40} BATCH=${BATCH:-128} LR=${LR:-0.1} SCHEDULE=${SCHEDULE:-onecycle} SEED=${SEED:-1}
USERS=${USERS:-20} COUNT=${COUNT:-1000}
OUT=${OUT:-runs/paper/$DATASET-$NET-$DEVICE}
RESULTS=${RESULTS:-docs/results.md}
mkdir -p "$OUT"

DATA="--data $DATASET"
[ -n "${DATA_DIR:-}" ] && DATA="$DATA --data-dir $DATA_DIR"
THREADS_OPT=""
[ -n "${THREADS:-}" ] && THREADS_OPT="--threads $THREADS"
TRAIN="train --net $NET $DATA --device $DEVICE $THREADS_OPT --epochs $EPOCHS --batch $BATCH --lr $LR --nesterov --schedule $SCHEDULE --seed $SEED --resume"

[ -f "$OUT/owner.key" ] || "$ACTIVEIP" key new --out "$OUT/owner.key"
if [ ! -f "$OUT/users.db" ]; then
  # shellcheck disable=SC2046
  "$ACTIVEIP" users add --registry "$OUT/users.db" $(seq -f "user%02g" 1 "$USERS")
fi

# train_model NAME [OPTIONS...]: trains $OUT/NAME (resuming a stopped run) unless its
# checkpoint already holds $EPOCHS epochs, as `activeip info` reads it.
train_model() {
  name=$1
  shift
  if [ -f "$OUT/$name.safetensors" ] && [ "$("$ACTIVEIP" info --model "$OUT/$name.safetensors" --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])' 2>/dev/null)" = "$EPOCHS" ]; then
    echo "skip: $OUT/$name.safetensors has all $EPOCHS epochs" >&2
    return 0
  fi
  # Exit status 3: trained, but some pattern fell short of tau; the report's row shows it.
  status=0
  # shellcheck disable=SC2086
  "$ACTIVEIP" $TRAIN --out "$OUT/$name.safetensors" --log "$OUT/$name.jsonl" "$@" || status=$?
  [ "$status" -eq 3 ] && echo "note: $OUT/$name.safetensors: protection incomplete; the report shows it" >&2 && status=0
  return "$status"
}
train_model baseline
# shellcheck disable=SC2086
train_model protected --protect --key "$OUT/owner.key" --registry "$OUT/users.db" ${PROTECT_OPTS:-}
# shellcheck disable=SC2086
"$ACTIVEIP" report --model "$OUT/protected.safetensors" --baseline "$OUT/baseline.safetensors" \
  --key "$OUT/owner.key" --registry "$OUT/users.db" $DATA --device "$DEVICE" $THREADS_OPT --count "$COUNT" --json >"$OUT/report.json.tmp"
mv "$OUT/report.json.tmp" "$OUT/report.json"

python3 - "$OUT" "$DATASET" "$NET" "$DEVICE" "$RESULTS" "${PROTECT_OPTS:-}" <<'PY'
import json, sys, datetime
out, dataset, net, device, results, opts = sys.argv[1:7]
if opts.strip():
    net = f"{net} ({' '.join(opts.split())})"
r = json.load(open(f"{out}/report.json"))
def epochs(log):
    rows = [json.loads(l) for l in open(log) if l.strip()]
    e = [x for x in rows if x.get("event") == "epoch"]
    return len(e), sum(x["seconds"] for x in e), (e[-1]["images_per_s"] if e else 0)
n, secs, ips = epochs(f"{out}/protected.jsonl")
o, u, f = r["owner"], r["users"], r["forged"]
header = ("| dataset | net | device | epochs | baseline acc | protected acc | drop | owner detection (p) "
          "| users authenticated (min detection) | forged passed (max detection) | protected wall time, img/s | date |")
row = (f"| {dataset} | {net} | {device} | {n} | {100*r['baseline_accuracy']:.2f}% | {100*r['clean_accuracy']:.2f}% "
       f"| {100*r['accuracy_drop']:+.2f} | {o['detection_rate']:.3f} (p={o['p_value']:.2g}) "
       f"| {u['authenticated']}/{u['count']} ({u['min_detection']:.3f}) "
       f"| {f['passed']}/{f['count']} ({f['max_detection']:.3f}) | {secs/60:.1f} min, {ips:.0f} | {datetime.date.today()} |")
text = open(results).read() if __import__("os").path.exists(results) else ""
with open(results, "a") as fh:
    if "## Reproduction runs (scripts/reproduce_paper.sh)" not in text:
        fh.write("\n## Reproduction runs (scripts/reproduce_paper.sh)\n\n" + header + "\n|" + "---|" * 12 + "\n")
    fh.write(row + "\n")
print(row)
PY
