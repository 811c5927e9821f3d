#!/bin/sh
# Attacks a protected model every way the CLI knows and tabulates what survives:
#   scripts/attack_sweep.sh MODEL KEY REGISTRY DATASET [OUT_DIR]
# The unattacked model's report (the baseline), pruning (each method x sparsity; magnitude and
# filter pruning with and without fine-tuning, fineprune fine-tuned on each attacker fraction),
# fine-tuning (each mode x learning rate x fraction; the largest rate with a warm-up and cosine
# decay, the schedule published results find erases most backdoor watermarks), distillation
# into fresh students, and the attacker's input preprocessing in front of the unchanged model
# (`activeip transform`, one attack per entry of TRANSFORMS). Each attack's `--json` report
# goes to OUT_DIR/json/ID.json (written atomically, with a "sweep" field: the parameters and
# seconds), its log to OUT_DIR/logs/ID.log, and OUT_DIR/attacks.csv gets one row per attack of
# this invocation. A failed attack gets a row with its error; the sweep goes on and exits 1 at
# the end.
# Plots and a summary: scripts/plot_attacks.py OUT_DIR/attacks.csv OUT_DIR.
# Environment: DEVICE (cpu), THREADS, DATA_DIR, BUILD_DIR (build), EPOCHS (attack fine-tuning
# epochs, 2), FRACTIONS ("0.1 0.33"), SPARSITIES ("0.0 0.1 ... 0.9"), PRUNE_METHODS ("global
# layer filter fineprune"; empty skips pruning), PRUNE_LR (fine-tuning after pruning, 0.01),
# PRUNE_FT_SPARSITIES (the sparsities also fine-tuned after pruning, SPARSITIES; "none":
# none), PRUNE_FRACTIONS (the attacker fractions of that fine-tuning, FRACTIONS), MODES
# ("ftll ftal rtll rtal"; empty skips fine-tuning), LRS ("0.001 0.01 0.08"), WARMUP (warm-up
# epochs of the largest rate, 1; half of EPOCHS when EPOCHS <= WARMUP), DISTILL (student nets,
# "resnet20"; empty skips), DISTILL_EPOCHS (EPOCHS), DISTILL_LR (0.1), TEMPERATURE (4),
# TRANSFORMS (input transforms, one attack each: "flip shift:1 shift:2 shift:4 median:3 jpeg:50
# noise:8 bits:4 blur:1 shrinkpad:4"; an entry "a+b" chains a then b; empty skips),
# FINETUNE_RUNS (fine-tuning attacks beyond the grid, each MODE:LR:FRACTION:EPOCHS[:SCHEDULE[:WARMUP]],
# e.g. "ftal:0.05:0.2:5:step ftal:0.1:0.33:5:cosine:1"; empty: none),
# TRANSFORM_SEED (the transforms' --seed, 0), QUANTIZE (weight bits of the quantization attack,
# one per output channel: "8 4"; empty skips), PROBES, COUNT, LIMIT_TRAIN, LIMIT_TEST, KEEP_MODELS (0: the attacked models are deleted once
# reported), SKIP_EXISTING (1: an attack whose JSON exists is not rerun, so a killed sweep
# resumes; the ID names the attack's parameters, not PROBES, COUNT or the limits: use a fresh
# OUT_DIR when changing those).
set -eu
if [ $# -lt 4 ] || [ $# -gt 5 ]; then
  echo "usage: $0 MODEL KEY REGISTRY DATASET [OUT_DIR]   (e.g. $0 runs/paper/cifar10-resnet20-cpu/protected.safetensors \\" >&2
  echo "       runs/paper/cifar10-resnet20-cpu/owner.key runs/paper/cifar10-resnet20-cpu/users.db cifar10)" >&2
  exit 2
fi
MODEL=$1 KEY=$2 REGISTRY=$3 DATASET=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${5:-$ROOT/runs/attacks/$(basename "$MODEL" .safetensors)-$DATASET}
BUILD_DIR=${BUILD_DIR:-build}
case $BUILD_DIR in
  /*) ;;
  *) [ -x "$BUILD_DIR/cli/activeip" ] || BUILD_DIR="$ROOT/$BUILD_DIR" ;;
esac
ACTIVEIP="$BUILD_DIR/cli/activeip"
[ -x "$ACTIVEIP" ] || { echo "$ACTIVEIP is missing: build first (scripts/test.sh or cmake --build $BUILD_DIR)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$0 needs python3 to write the reports and the CSV" >&2; exit 1; }
for f in "$MODEL" "$KEY" "$REGISTRY"; do
  [ -f "$f" ] || { echo "$f: no such file" >&2; exit 1; }
done

DEVICE=${DEVICE:-cpu} EPOCHS=${EPOCHS:-2}
FRACTIONS=${FRACTIONS:-0.1 0.33}
SPARSITIES=${SPARSITIES:-0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9}
PRUNE_METHODS=${PRUNE_METHODS-global layer filter fineprune}
PRUNE_LR=${PRUNE_LR:-0.01}
PRUNE_FT_SPARSITIES=${PRUNE_FT_SPARSITIES:-$SPARSITIES}
PRUNE_FRACTIONS=${PRUNE_FRACTIONS:-$FRACTIONS}
MODES=${MODES-ftll ftal rtll rtal}
LRS=${LRS:-0.001 0.01 0.08}
WARMUP=${WARMUP:-1}
DISTILL=${DISTILL-resnet20}
DISTILL_EPOCHS=${DISTILL_EPOCHS:-$EPOCHS} DISTILL_LR=${DISTILL_LR:-0.1} TEMPERATURE=${TEMPERATURE:-4}
TRANSFORMS=${TRANSFORMS-flip shift:1 shift:2 shift:4 median:3 jpeg:50 noise:8 bits:4 blur:1 shrinkpad:4}
TRANSFORM_SEED=${TRANSFORM_SEED:-0}
FINETUNE_RUNS=${FINETUNE_RUNS:-}
QUANTIZE=${QUANTIZE-8 4}
KEEP_MODELS=${KEEP_MODELS:-0} SKIP_EXISTING=${SKIP_EXISTING:-1}

# Options every attack takes: the data, the device and the probing budget.
COMMON="--key $KEY --registry $REGISTRY --data $DATASET --device $DEVICE --json"
[ -n "${DATA_DIR:-}" ] && COMMON="$COMMON --data-dir $DATA_DIR"
[ -n "${THREADS:-}" ] && COMMON="$COMMON --threads $THREADS"
[ -n "${PROBES:-}" ] && COMMON="$COMMON --probes $PROBES"
[ -n "${COUNT:-}" ] && COMMON="$COMMON --count $COUNT"
[ -n "${LIMIT_TRAIN:-}" ] && COMMON="$COMMON --limit-train $LIMIT_TRAIN"
[ -n "${LIMIT_TEST:-}" ] && COMMON="$COMMON --limit-test $LIMIT_TEST"

# The largest learning rate is the warm-up + cosine attack. The trainer needs the warm-up to
# end before the last epoch, so a one-epoch budget warms up for half of it.
LARGE_LR=$(echo "$LRS" | tr ' ' '\n' | awk 'NF { if (m == "" || $1 + 0 > m + 0) m = $1 } END { print m }')
LARGE_WARMUP=$(awk -v w="$WARMUP" -v e="$EPOCHS" 'BEGIN { if (w + 0 < e + 0) print w; else print e / 2 }')

mkdir -p "$OUT_DIR/json" "$OUT_DIR/logs" "$OUT_DIR/models"
PLAN="$OUT_DIR/.plan"
: >"$PLAN"
now() { python3 -c 'import time; print("%.3f" % time.time())'; }

# run_attack ID FAMILY METHOD SPARSITY LR FRACTION EPOCHS STUDENT -- activeip arguments...
# Runs one attack unless its report exists, and leaves json/ID.json (the report with a "sweep"
# field) or json/ID.failed.json (the parameters and the error).
run_attack() {
  id=$1 family=$2 method=$3 sparsity=$4 lr=$5 fraction=$6 epochs=$7 student=$8
  shift 9
  echo "$id" >>"$PLAN"
  json="$OUT_DIR/json/$id.json" log="$OUT_DIR/logs/$id.log"
  if [ "$SKIP_EXISTING" = 1 ] && [ -f "$json" ]; then
    echo "skip $id (report exists)"
    return 0
  fi
  rm -f "$OUT_DIR/json/$id.failed.json" "$json.tmp"
  echo "run  $id"
  t0=$(now)
  rc=0
  echo "$ACTIVEIP $*" >"$log"
  "$ACTIVEIP" "$@" >"$json.tmp" 2>>"$log" || rc=$?
  t1=$(now)
  python3 - "$json" "$rc" "$t0" "$t1" "$family" "$method" "$sparsity" "$lr" "$fraction" "$epochs" \
      "$student" "$log" "$ACTIVEIP $*" <<'PY' || { echo "     $id failed: see $log"; }
import json, os, sys
path, rc, t0, t1, family, method, sparsity, lr, fraction, epochs, student, log, command = sys.argv[1:14]
sweep = {"family": family, "method": method, "sparsity": sparsity, "lr": lr, "fraction": fraction,
         "epochs": epochs, "student": student, "seconds": round(float(t1) - float(t0), 3),
         "command": command}
error = None
report = None
if rc != "0":
    lines = [l.strip() for l in open(log, errors="replace") if l.strip()]
    error = f"exit {rc}: " + (lines[-1] if len(lines) > 1 else "no message")
else:
    try:
        report = json.load(open(path + ".tmp"))
        if not isinstance(report, dict) or "clean_accuracy" not in report:
            error = "the report has no clean_accuracy"
    except (OSError, ValueError) as e:
        error = f"unreadable report: {e}"
if error is None:
    report["sweep"] = sweep
    out, text = path, json.dumps(report, indent=1, sort_keys=True)
else:
    sweep["error"] = error
    out, text = path[:-len(".json")] + ".failed.json", json.dumps({"sweep": sweep}, indent=1, sort_keys=True)
with open(out + ".part", "w") as fh:
    fh.write(text + "\n")
os.replace(out + ".part", out)
if os.path.exists(path + ".tmp"):
    os.remove(path + ".tmp")
sys.exit(1 if error else 0)
PY
  if [ "$KEEP_MODELS" != 1 ]; then
    rm -f "$OUT_DIR/models/$id.safetensors" "$OUT_DIR/models/$id".*.safetensors
  fi
}

M="$OUT_DIR/models"
# The model as it is (global pruning at sparsity 0 changes nothing): whether the protection
# was there before any attack, so that an attack is not blamed for its absence.
# shellcheck disable=SC2086
run_attack baseline baseline none 0 "" "" 0 "" -- \
  prune --model "$MODEL" --method global --sparsity 0 --out "$M/baseline.safetensors" $COMMON

# shellcheck disable=SC2086
for method in $PRUNE_METHODS; do
  for s in $SPARSITIES; do
    if [ "$method" != fineprune ]; then
      id="prune-$method-s$s"
      run_attack "$id" prune "$method" "$s" "" "" 0 "" -- \
        prune --model "$MODEL" --method "$method" --sparsity "$s" --out "$M/$id.safetensors" $COMMON
    fi
    case " $PRUNE_FT_SPARSITIES " in *" $s "*) ;; *) continue ;; esac
    for f in $PRUNE_FRACTIONS; do
      id="prune-$method-s$s-f$f-e$EPOCHS-lr$PRUNE_LR"
      run_attack "$id" prune "$method" "$s" "$PRUNE_LR" "$f" "$EPOCHS" "" -- \
        prune --model "$MODEL" --method "$method" --sparsity "$s" --out "$M/$id.safetensors" \
        --finetune-epochs "$EPOCHS" --fraction "$f" --lr "$PRUNE_LR" $COMMON
    done
  done
done

# shellcheck disable=SC2086
for mode in $MODES; do
  for lr in $LRS; do
    for f in $FRACTIONS; do
      id="finetune-$mode-lr$lr-f$f-e$EPOCHS"
      SCHED=""
      if [ "$lr" = "$LARGE_LR" ]; then
        id="$id-w$LARGE_WARMUP"
        SCHED="--warmup $LARGE_WARMUP --schedule cosine"
      fi
      run_attack "$id" finetune "$mode" "" "$lr" "$f" "$EPOCHS" "" -- \
        finetune --model "$MODEL" --mode "$mode" --lr "$lr" --fraction "$f" --epochs "$EPOCHS" $SCHED \
        --out "$M/$id.safetensors" $COMMON
    done
  done
done

# The fine-tuning attacks named one by one (settings the grid does not hold: another schedule,
# more epochs, another fraction).
for run in $FINETUNE_RUNS; do
  mode=$(echo "$run" | cut -d: -f1) lr=$(echo "$run" | cut -d: -f2) f=$(echo "$run" | cut -d: -f3)
  epochs=$(echo "$run" | cut -s -d: -f4) sched=$(echo "$run" | cut -s -d: -f5) warmup=$(echo "$run" | cut -s -d: -f6)
  [ -n "$epochs" ] || { echo "FINETUNE_RUNS entry '$run' is not MODE:LR:FRACTION:EPOCHS[:SCHEDULE[:WARMUP]]" >&2; exit 2; }
  sched=${sched:-cosine} warmup=${warmup:-0}
  id="finetune-$mode-lr$lr-f$f-e$epochs-$sched-w$warmup"
  # shellcheck disable=SC2086
  run_attack "$id" finetune "$mode" "" "$lr" "$f" "$epochs" "" -- \
    finetune --model "$MODEL" --mode "$mode" --lr "$lr" --fraction "$f" --epochs "$epochs" --schedule "$sched" \
    --warmup "$warmup" --out "$M/$id.safetensors" $COMMON
done

if [ -n "$DISTILL" ]; then
  if "$ACTIVEIP" distill --help 2>/dev/null | grep -q -- '--teacher'; then
    # shellcheck disable=SC2086
    for net in $DISTILL; do
      for f in $FRACTIONS; do
        id="distill-$net-f$f-e$DISTILL_EPOCHS-lr$DISTILL_LR-t$TEMPERATURE"
        run_attack "$id" distill distill "" "$DISTILL_LR" "$f" "$DISTILL_EPOCHS" "$net" -- \
          distill --teacher "$MODEL" --net "$net" --out "$M/$id.safetensors" --fraction "$f" \
          --epochs "$DISTILL_EPOCHS" --lr "$DISTILL_LR" --temperature "$TEMPERATURE" $COMMON
      done
    done
  else
    echo "note: this build has no \`activeip distill\`: distillation skipped"
  fi
fi

# The attacker's preprocessing in front of the model as it is: nothing is trained or written.
if [ -n "$TRANSFORMS" ]; then
  if "$ACTIVEIP" transform --help >/dev/null 2>&1; then
    for spec in $TRANSFORMS; do
      id="transform-$(echo "$spec" | tr ':' '-')-seed$TRANSFORM_SEED"
      args=$(echo "$spec" | tr '+' '\n' | awk 'NF { printf " --transform %s", $0 }')
      # shellcheck disable=SC2086
      run_attack "$id" transform "$spec" "" "" "" 0 "" -- \
        transform --model "$MODEL" $args --seed "$TRANSFORM_SEED" $COMMON
    done
  else
    echo "note: this build has no \`activeip transform\`: input transforms skipped"
  fi
fi

# The weights rounded to integers, as a thief does before deploying: nothing is trained.
if [ -n "$QUANTIZE" ]; then
  if "$ACTIVEIP" quantize --help >/dev/null 2>&1; then
    for bits in $QUANTIZE; do
      id="quantize-int$bits-channel"
      # shellcheck disable=SC2086
      run_attack "$id" quantize "int$bits" "" "" "" 0 "" -- \
        quantize --model "$MODEL" --bits "$bits" --out "$M/$id.safetensors" $COMMON
    done
  else
    echo "note: this build has no \`activeip quantize\`: quantization skipped"
  fi
fi

# One CSV row per attack of this invocation, in the order they were planned.
python3 - "$OUT_DIR" <<'PY'
import csv, json, os, sys
out = sys.argv[1]
columns = ["id", "dataset", "net", "family", "method", "sparsity", "lr", "fraction", "epochs", "student", "schedule",
           "warmup", "weight_sparsity", "clean_accuracy", "original_accuracy", "accuracy_drop",
           "owner_detection", "owner_p_value", "owner_verified", "users_authenticated", "users_count",
           "users_mean_detection", "users_min_detection", "forged_passed", "forged_count",
           "forged_max_detection", "seconds", "json", "error"]
ids = [l.strip() for l in open(os.path.join(out, ".plan")) if l.strip()]
rows, failed = [], 0
for id in ids:
    ok = os.path.join(out, "json", id + ".json")
    bad = os.path.join(out, "json", id + ".failed.json")
    row = {c: "" for c in columns}
    row["id"] = id
    if os.path.exists(ok):
        r = json.load(open(ok))
        s, a = r.get("sweep", {}), r.get("attack", {})
        o, u, f = r.get("owner", {}), r.get("users", {}), r.get("forged", {})
        ft = a.get("finetune") or {}
        row.update({
            "dataset": r.get("dataset", ""), "net": r.get("net", ""),
            "schedule": ft.get("schedule", ""), "warmup": ft.get("warmup_epochs", ""),
            "weight_sparsity": a.get("weight_sparsity", ""),
            "clean_accuracy": r.get("clean_accuracy", ""), "original_accuracy": r.get("original_accuracy", ""),
            "accuracy_drop": r.get("accuracy_drop", ""),
            "owner_detection": o.get("detection_rate", ""), "owner_p_value": o.get("p_value", ""),
            "owner_verified": int(o["verified"]) if "verified" in o else "",
            "users_authenticated": u.get("authenticated", ""), "users_count": u.get("count", ""),
            "users_mean_detection": u.get("mean_detection", ""), "users_min_detection": u.get("min_detection", ""),
            "forged_passed": f.get("passed", ""), "forged_count": f.get("count", ""),
            "forged_max_detection": f.get("max_detection", ""),
            "json": os.path.relpath(ok, out)})
    elif os.path.exists(bad):
        s = json.load(open(bad))["sweep"]
        row["error"] = s.get("error", "failed")
        failed += 1
    else:
        s = {}
        row["error"] = "no report written"
        failed += 1
    for c in ("family", "method", "sparsity", "lr", "fraction", "epochs", "student", "seconds"):
        row[c] = s.get(c, "")
    rows.append(row)
with open(os.path.join(out, "attacks.csv.tmp"), "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
os.replace(os.path.join(out, "attacks.csv.tmp"), os.path.join(out, "attacks.csv"))
print(f"{out}/attacks.csv: {len(rows)} attacks, {failed} failed")
sys.exit(1 if failed else 0)
PY
