#!/bin/sh
# Attacks a protected model every way the CLI knows and tabulates what survives:
#   scripts/attack_sweep.sh [--shard I/N] [--parallel K] MODEL KEY REGISTRY DATASET [OUT_DIR]
#   scripts/attack_sweep.sh --plan [--shard I/N] MODEL KEY REGISTRY DATASET [OUT_DIR]
#   scripts/attack_sweep.sh [--tasks N] [--parallel K] MODEL KEY REGISTRY DATASET [OUT_DIR] --slurm [SBATCH OPTIONS]
#   scripts/attack_sweep.sh --collect OUT_DIR
# The grid: the unattacked model's report (the baseline), pruning (each method x sparsity;
# magnitude and filter pruning with and without fine-tuning, fineprune fine-tuned on each
# attacker fraction), fine-tuning (each mode x learning rate x fraction; the largest rate with a
# warm-up and cosine decay, the schedule published results find erases most backdoor
# watermarks), distillation into fresh students, the attacker's input preprocessing in front of
# the unchanged model (`activeip transform`, one attack per entry of TRANSFORMS) and weight
# quantization. It is enumerated once, one line per attack (its ID, parameters and command), into
# OUT_DIR/plan.txt, and every mode works from that list:
#   (no option)    runs every attack, then collects (below).
#   --plan         prints the grid, one line per attack: its ID, a tab and its command; runs
#                  nothing and writes nothing.
#   --shard I/N    runs only attack k (0-based, in grid order) with k mod N = I, and collects
#                  nothing: the shards of one grid can run at once, on several machines sharing
#                  OUT_DIR.
#   --parallel K   runs K attacks at once, each worker taking the next attack no other has
#                  taken; DEVICES=cuda:0,cuda:1,... gives worker j the j-th device (cyclically)
#                  and makes K the number of devices unless given.
#   --slurm [SBATCH OPTIONS]  writes OUT_DIR/sweep.sbatch and submits the grid as one
#                  `sbatch --array=0-(N-1)` job whose task I runs --shard I/N (N: one task per
#                  attack, at most --tasks N; --parallel K goes to every task). This
#                  invocation's knobs are written into the batch script. The options after
#                  --slurm go to sbatch (`--wait` waits for the job's end); its logs go to
#                  OUT_DIR/logs/slurm-JOB_TASK.out. It prints the job id and the --collect
#                  command to run once the job has finished.
#   --collect OUT_DIR  writes OUT_DIR/attacks.csv, one row per attack of the grid in
#                  OUT_DIR/plan.txt in grid order (an attack without a report is a row with
#                  an error), then the table OUT_DIR/attacks.md and the plots
#                  (scripts/plot_attacks.py).
# A locked model (`train --protect --lock`; `activeip info` says so) is swept alike, FRACTIONS
# defaulting to "0.01 0.1 0.33", and its CSV carries the lock's columns in place of the users' and
# forged fingerprints': authorized_min_accuracy, authorized_mean_accuracy, authorized_users (the
# authorized users' accuracy with their lock pattern), unauthorized_accuracy (clean probes),
# forged_count, forged_mean_accuracy, forged_max_accuracy (lock patterns of fresh keys), lock_n (the
# probes each is measured on), and for each fine-tuning and distillation the thief's alternative:
# scratch_accuracy, the clean accuracy of the same net (the student for distillation) trained from
# scratch by `activeip train --fraction` on the attack's records (same fraction, seed, limits,
# epochs, learning rate and schedule), and scratch_gap = clean_accuracy - scratch_accuracy. Each
# distinct from-scratch run is one more job of the grid (ID scratch-NET-lrLR-fF-eE[-SCHED-wW], family
# "scratch", a CSV row of its own), after the attacks; --collect joins it to the attacks that
# trained alike (their reports' net, fraction and training config). On a locked model each fraction
# also gets a token inversion (`activeip invert --steps INVERT_STEPS`, ID invert-fF-sS, family
# "invert"; INVERT_STEPS empty skips it): its row gives the model's clean accuracy, the users' own
# patterns' accuracies, and inverted_accuracy and inverted_position, the test accuracy the best
# recovered patch unlocks and where it was found.
# Each attack's `--json` report goes to OUT_DIR/json/ID.json (written atomically, with a "sweep"
# field: the parameters, the command and its seconds), its log to OUT_DIR/logs/ID.log; a failed
# attack leaves OUT_DIR/json/ID.failed.json and is a CSV row with its error. The sweep goes on
# after a failure and exits 1 at the end; 2 on a usage error.
# Environment: DEVICE (cpu), DEVICES (see --parallel), THREADS, DATA_DIR, BUILD_DIR (build),
# EPOCHS (attack fine-tuning epochs, 2), FRACTIONS ("0.1 0.33"), SPARSITIES ("0.0 0.1 ... 0.9"),
# PRUNE_METHODS ("global layer filter fineprune"; empty skips pruning), PRUNE_LR (fine-tuning
# after pruning, 0.01), PRUNE_FT_SPARSITIES (the sparsities also fine-tuned after pruning,
# SPARSITIES; "none": none), PRUNE_FRACTIONS (the attacker fractions of that fine-tuning,
# FRACTIONS), MODES ("ftll ftal rtll rtal"; empty skips fine-tuning), LRS ("0.001 0.01 0.08"),
# WARMUP (warm-up epochs of the largest rate, 1; half of EPOCHS when EPOCHS <= WARMUP), DISTILL
# (student nets, "resnet20"; empty skips), DISTILL_EPOCHS (EPOCHS), DISTILL_LR (0.1),
# TEMPERATURE (4), TRANSFORMS (input transforms, one attack each: "flip shift:1 shift:2 shift:4
# median:3 jpeg:50 noise:8 bits:4 blur:1 shrinkpad:4"; an entry "a+b" chains a then b; empty
# skips), FINETUNE_RUNS (fine-tuning attacks beyond the grid, each
# MODE:LR:FRACTION:EPOCHS[:SCHEDULE[:WARMUP]], e.g. "ftal:0.05:0.2:5:step
# ftal:0.1:0.33:5:cosine:1"; empty: none), TRANSFORM_SEED (the transforms' --seed, 0), QUANTIZE
# (weight bits of the quantization attack, one per output channel: "8 4"; empty skips), PROBES,
# COUNT, FORGE_SEED (the forged keys' --forge-seed; unset: fresh random keys, so the forged
# columns differ from run to run: set it where two sweeps must agree, e.g. a sharded run and a
# local one), LIMIT_TRAIN, LIMIT_TEST, KEEP_MODELS (0: the attacked models are deleted once
# reported), SKIP_EXISTING (1: an attack whose JSON exists is not rerun, so a killed sweep
# resumes; the ID names the attack's parameters, not the device, PROBES, COUNT or the limits:
# use a fresh OUT_DIR when changing those), SCRATCH (1: on a locked model, train the from-scratch
# alternatives; 0: none, the scratch columns stay empty), INVERT_STEPS (on a locked model, the Adam
# steps of each token inversion, 200; empty: none).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/attack_sweep.sh"

usage() {
  cat <<EOF
usage: $0 [--shard I/N] [--parallel K] MODEL KEY REGISTRY DATASET [OUT_DIR]
       $0 --plan [--shard I/N] MODEL KEY REGISTRY DATASET [OUT_DIR]
       $0 [--tasks N] [--parallel K] MODEL KEY REGISTRY DATASET [OUT_DIR] --slurm [SBATCH OPTIONS]
       $0 --collect OUT_DIR
(e.g. $0 runs/paper/cifar10-resnet20-cpu/protected.safetensors \\
      runs/paper/cifar10-resnet20-cpu/owner.key runs/paper/cifar10-resnet20-cpu/users.db cifar10)
The header of $0 describes each option and every environment knob.
EOF
}
usage_error() { echo "error: $1" >&2; usage >&2; exit 2; }
positive() { case $2 in '' | *[!0-9]*) usage_error "$1 '$2': expected a positive integer" ;; esac
             [ "$2" -ge 1 ] || usage_error "$1 '$2': expected a positive integer"; }

MODE=run SHARD="" PARALLEL="" TASKS="" NPOS=0
set_mode() {
  [ "$MODE" = run ] || [ "$MODE" = "$1" ] || usage_error "--$MODE and --$1 exclude each other"
  MODE=$1
}
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --plan) set_mode plan ;;
    --collect) set_mode collect ;;
    --slurm) set_mode slurm; shift; break ;;  # what follows is sbatch's
    --shard | --parallel | --tasks)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in --shard) SHARD=$2 ;; --parallel) PARALLEL=$2 ;; --tasks) TASKS=$2 ;; esac
      shift ;;
    --shard=*) SHARD=${1#*=} ;;
    --parallel=*) PARALLEL=${1#*=} ;;
    --tasks=*) TASKS=${1#*=} ;;
    -*) usage_error "unknown option '$1'" ;;
    *) NPOS=$((NPOS + 1)); [ "$NPOS" -le 5 ] || usage_error "too many arguments ('$1')"
       eval "POS$NPOS=\$1" ;;
  esac
  shift
done

# --shard I/N: attack k of the grid (0-based) is this invocation's when k mod N = I.
SHARD_I=0 SHARD_N=1
if [ -n "$SHARD" ]; then
  bad_shard() { usage_error "--shard '$SHARD': expected I/N with 0 <= I < N"; }
  case $SHARD in */*) ;; *) bad_shard ;; esac
  SHARD_I=${SHARD%%/*} SHARD_N=${SHARD#*/}
  for n in "$SHARD_I" "$SHARD_N"; do case $n in '' | *[!0-9]*) bad_shard ;; esac; done
  { [ "$SHARD_N" -ge 1 ] && [ "$SHARD_I" -lt "$SHARD_N" ]; } || bad_shard
fi
[ -z "$PARALLEL" ] || positive --parallel "$PARALLEL"
[ -z "$TASKS" ] || positive --tasks "$TASKS"
[ -z "$TASKS" ] || [ "$MODE" = slurm ] || usage_error "--tasks goes with --slurm"
[ -z "$SHARD" ] || [ "$MODE" = run ] || [ "$MODE" = plan ] || usage_error "--shard does not go with --$MODE"
[ -z "$PARALLEL" ] || [ "$MODE" = run ] || [ "$MODE" = slurm ] || usage_error "--parallel does not go with --$MODE"
if [ "$MODE" = slurm ]; then
  for a in "$@"; do
    case $a in -a | -a* | --array | --array=*) usage_error "--slurm sets sbatch's --array itself (one task per shard; --tasks N caps them)" ;; esac
  done
fi
command -v python3 >/dev/null || { echo "error: $0 needs python3 to write the reports and the CSV" >&2; exit 1; }

# shellcheck disable=SC2154  # POS1..POS5 are set by the eval above
if [ "$MODE" = collect ]; then
  [ "$NPOS" -eq 1 ] || usage_error "--collect takes one argument, OUT_DIR"
  OUT_DIR=$POS1
else
  [ "$NPOS" -ge 4 ] || usage_error "MODEL, KEY, REGISTRY and DATASET are required"
  MODEL=$POS1 KEY=$POS2 REGISTRY=$POS3 DATASET=$POS4
  OUT_DIR=${POS5:-$ROOT/runs/attacks/$(basename "$MODEL" .safetensors)-$DATASET}
fi
# Absolute, as the plan's commands and the batch script of --slurm name it.
case $OUT_DIR in /*) ;; *) OUT_DIR="$PWD/$OUT_DIR" ;; esac
PLAN="$OUT_DIR/plan.txt"

# q WORD: WORD as the shell reads it back (quoted only where it needs to be).
q() {
  case $1 in
    '' | *[!A-Za-z0-9_./:=+,@%-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}
# words ARG...: the arguments as one command line.
words() {
  _line=""
  for _w in "$@"; do _line="$_line${_line:+ }$(q "$_w")"; done
  printf '%s' "$_line"
}

# collect: attacks.csv (one row per attack of the grid, in its order: equal for a local, a sharded
# and a Slurm run of one grid but for the seconds), then attacks.md and the plots.
collect() {
  [ -f "$PLAN" ] || { echo "error: $PLAN: no such file (run or submit the sweep into $OUT_DIR first)" >&2; exit 1; }
  _rc=0
  python3 - "$OUT_DIR" <<'PY' || _rc=$?
import csv, json, os, sys
out = sys.argv[1]
columns = ["id", "dataset", "net", "family", "method", "sparsity", "lr", "fraction", "epochs", "student", "schedule",
           "warmup", "weight_sparsity", "clean_accuracy", "original_accuracy", "accuracy_drop",
           "owner_detection", "owner_p_value", "owner_verified", "users_authenticated", "users_count",
           "users_mean_detection", "users_min_detection", "forged_passed", "forged_count",
           "forged_max_detection", "seconds", "json", "error"]
params = ["id", "family", "method", "sparsity", "lr", "fraction", "epochs", "student"]
plan = [dict(zip(params, l.rstrip("\n").split("|", len(params)))) for l in open(os.path.join(out, "plan.txt"))
        if l.strip()]
reports = {}
for p in plan:
    ok = os.path.join(out, "json", p["id"] + ".json")
    if os.path.exists(ok):
        reports[p["id"]] = json.load(open(ok))
# A locked model's sweep: the lock's columns in place of the users' and forged fingerprints', and
# each fine-tuning's and distillation's from-scratch alternative (its "scratch" run) beside it.
locked = any(p["family"] == "scratch" for p in plan) or any("lock" in r for r in reports.values())
if locked:
    at = columns.index("users_authenticated")
    columns[at:columns.index("seconds")] = [
        "authorized_min_accuracy", "authorized_mean_accuracy", "authorized_users", "unauthorized_accuracy",
        "forged_count", "forged_mean_accuracy", "forged_max_accuracy", "lock_n", "scratch_accuracy", "scratch_gap",
        "inverted_accuracy", "inverted_position"]

def training(r):
    """What a run trained: (net, fraction, the training config but for what changes no result), or None."""
    a = r.get("attack") if isinstance(r.get("attack"), dict) else {}
    config = a.get("finetune") if a.get("kind") == "finetune" else a.get("distill") if a.get("kind") == "distill" \
        else a.get("train") if a.get("kind") == "scratch" else None
    if not config:
        return None
    keep = ("lr", "epochs", "batch", "momentum", "nesterov", "wd", "schedule", "warmup_epochs", "milestones", "gamma",
            "label_smoothing", "seed", "augment")
    return json.dumps([r.get("net"), float(a.get("fraction", 0)), {k: config.get(k) for k in keep}], sort_keys=True)

scratch = {training(r): r["clean_accuracy"] for i, r in reports.items()
           if isinstance(r.get("attack"), dict) and r["attack"].get("kind") == "scratch"}
rows, failed = [], 0
for p in plan:
    row = {c: "" for c in columns}
    row.update(p)
    ok = os.path.join(out, "json", row["id"] + ".json")
    bad = os.path.join(out, "json", row["id"] + ".failed.json")
    if row["id"] in reports:
        r = reports[row["id"]]
        s, a = r.get("sweep", {}), r.get("attack") if isinstance(r.get("attack"), dict) else {}
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
            "seconds": s.get("seconds", ""), "json": os.path.relpath(ok, out)})
        if locked:
            lock = r.get("lock", {})
            au, fo = lock.get("authorized", {}), lock.get("forged", {})
            ft = ft or a.get("distill") or a.get("train") or {}
            row.update({
                "schedule": ft.get("schedule", ""), "warmup": ft.get("warmup_epochs", ""),
                "authorized_min_accuracy": au.get("min_accuracy", ""),
                "authorized_mean_accuracy": au.get("mean_accuracy", ""),
                "authorized_users": len(au["per_user"]) if "per_user" in au else "",
                "unauthorized_accuracy": lock.get("unauthorized_accuracy", ""),
                "forged_count": fo.get("count", ""), "forged_mean_accuracy": fo.get("mean_accuracy", ""),
                "forged_max_accuracy": fo.get("max_accuracy", ""), "lock_n": lock.get("n", "")})
            if r.get("attack") == "invert":  # the model unchanged; what the recovered patch unlocks
                users = [u["accuracy"] for u in r.get("authorized", [])]
                row.update({
                    "unauthorized_accuracy": r.get("clean_accuracy", ""),
                    "authorized_min_accuracy": min(users) if users else "",
                    "authorized_mean_accuracy": sum(users) / len(users) if users else "",
                    "authorized_users": len(users) if users else "",
                    "inverted_accuracy": r.get("best_accuracy", ""),
                    "inverted_position": r.get("best_position", "")})
            if a.get("kind") in ("finetune", "distill") and training(r) in scratch:
                row["scratch_accuracy"] = scratch[training(r)]
                row["scratch_gap"] = round(r["clean_accuracy"] - row["scratch_accuracy"], 6)
    elif os.path.exists(bad):
        s = json.load(open(bad))["sweep"]
        row["seconds"] = s.get("seconds", "")
        row["error"] = s.get("error", "failed")
        failed += 1
    else:
        row["error"] = "no report written"
        failed += 1
    rows.append({c: row[c] for c in columns})
with open(os.path.join(out, "attacks.csv.tmp"), "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
os.replace(os.path.join(out, "attacks.csv.tmp"), os.path.join(out, "attacks.csv"))
print(f"{out}/attacks.csv: {len(rows)} attacks, {failed} failed")
sys.exit(1 if failed else 0)
PY
  python3 "$ROOT/scripts/plot_attacks.py" "$OUT_DIR/attacks.csv" "$OUT_DIR" \
    || { echo "error: scripts/plot_attacks.py failed on $OUT_DIR/attacks.csv" >&2; _rc=1; }
  return "$_rc"
}

if [ "$MODE" = collect ]; then
  collect && exit 0
  exit 1
fi

BUILD_DIR=${BUILD_DIR:-build}
case $BUILD_DIR in
  /*) ;;
  *) [ -x "$BUILD_DIR/cli/activeip" ] || BUILD_DIR="$ROOT/$BUILD_DIR" ;;
esac
ACTIVEIP="$BUILD_DIR/cli/activeip"
[ -x "$ACTIVEIP" ] || { echo "error: $ACTIVEIP is missing: build first (scripts/test.sh or cmake --build $BUILD_DIR)" >&2; exit 1; }
for f in "$MODEL" "$KEY" "$REGISTRY"; do
  [ -f "$f" ] || { echo "error: $f: no such file" >&2; exit 1; }
done

# The model's net, and whether it is locked (lock mode): a locked model's sweep reports the lock's
# columns and, with SCRATCH=1, trains the thief's alternative to each fine-tuning and distillation.
MODEL_INFO=$("$ACTIVEIP" info --model "$MODEL" --json) || { echo "error: $MODEL: \`activeip info\` failed" >&2; exit 1; }
MODEL_NET=$(printf '%s' "$MODEL_INFO" | python3 -c 'import json, sys; print(json.load(sys.stdin)["net"])')
LOCKED=$(printf '%s' "$MODEL_INFO" |
  python3 -c 'import json, sys; print(int(bool((json.load(sys.stdin).get("protection") or {}).get("lock"))))')

DEVICE=${DEVICE:-cpu} DEVICES=${DEVICES:-} EPOCHS=${EPOCHS:-2}
# A locked model's thief is also measured on 1% of the training split.
if [ "$LOCKED" = 1 ]; then FRACTIONS=${FRACTIONS:-0.01 0.1 0.33}; else FRACTIONS=${FRACTIONS:-0.1 0.33}; fi
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
SCRATCH=${SCRATCH:-1}
INVERT_STEPS=${INVERT_STEPS-200}
# Every knob, as the batch script of --slurm pins them for its tasks.
KNOBS="BUILD_DIR DEVICE DEVICES THREADS DATA_DIR EPOCHS FRACTIONS SPARSITIES PRUNE_METHODS PRUNE_LR
PRUNE_FT_SPARSITIES PRUNE_FRACTIONS MODES LRS WARMUP DISTILL DISTILL_EPOCHS DISTILL_LR TEMPERATURE
TRANSFORMS TRANSFORM_SEED FINETUNE_RUNS QUANTIZE PROBES COUNT FORGE_SEED LIMIT_TRAIN LIMIT_TEST KEEP_MODELS SKIP_EXISTING
SCRATCH INVERT_STEPS"

# device_of J: the device of worker J.
NDEVICES=$(printf '%s' "$DEVICES" | tr ',' '\n' | grep -c . || true)
device_of() {
  if [ "$NDEVICES" -eq 0 ]; then printf '%s' "$DEVICE"
  else printf '%s' "$DEVICES" | tr ',' '\n' | grep . | sed -n "$(($1 % NDEVICES + 1))p"; fi
}
PARALLEL_GIVEN=$PARALLEL
[ -n "$PARALLEL" ] || { PARALLEL=1; [ "$NDEVICES" -eq 0 ] || PARALLEL=$NDEVICES; }

# Options every attack takes: the data and the probing budget (the device is the worker's).
COMMON="--key $(q "$KEY") --registry $(q "$REGISTRY") --data $(q "$DATASET") --json"
[ -n "${DATA_DIR:-}" ] && COMMON="$COMMON --data-dir $(q "$DATA_DIR")"
[ -n "${THREADS:-}" ] && COMMON="$COMMON --threads $(q "$THREADS")"
[ -n "${PROBES:-}" ] && COMMON="$COMMON --probes $(q "$PROBES")"
[ -n "${COUNT:-}" ] && COMMON="$COMMON --count $(q "$COUNT")"
[ -n "${FORGE_SEED:-}" ] && COMMON="$COMMON --forge-seed $(q "$FORGE_SEED")"
[ -n "${LIMIT_TRAIN:-}" ] && COMMON="$COMMON --limit-train $(q "$LIMIT_TRAIN")"
[ -n "${LIMIT_TEST:-}" ] && COMMON="$COMMON --limit-test $(q "$LIMIT_TEST")"

# Options every from-scratch run takes: the attacks' data, limits and threads.
TRAIN_COMMON="--data $(q "$DATASET")"
[ -n "${DATA_DIR:-}" ] && TRAIN_COMMON="$TRAIN_COMMON --data-dir $(q "$DATA_DIR")"
[ -n "${THREADS:-}" ] && TRAIN_COMMON="$TRAIN_COMMON --threads $(q "$THREADS")"
[ -n "${LIMIT_TRAIN:-}" ] && TRAIN_COMMON="$TRAIN_COMMON --limit-train $(q "$LIMIT_TRAIN")"
[ -n "${LIMIT_TEST:-}" ] && TRAIN_COMMON="$TRAIN_COMMON --limit-test $(q "$LIMIT_TEST")"

# Options of a token inversion: the data, the key and registry (the users' own patterns, for
# reference), limits and threads; it probes nothing else.
INVERT_COMMON="--key $(q "$KEY") --registry $(q "$REGISTRY") --json $TRAIN_COMMON"

# The largest learning rate is the warm-up + cosine attack. The trainer needs the warm-up to
# end before the last epoch, so a one-epoch budget warms up for half of it.
LARGE_LR=$(echo "$LRS" | tr ' ' '\n' | awk 'NF { if (m == "" || $1 + 0 > m + 0) m = $1 } END { print m }')
LARGE_WARMUP=$(awk -v w="$WARMUP" -v e="$EPOCHS" 'BEGIN { if (w + 0 < e + 0) print w; else print e / 2 }')

# attack ID FAMILY METHOD SPARSITY LR FRACTION EPOCHS STUDENT ACTIVEIP-ARGUMENTS...: one line of
# the plan, "ID|FAMILY|METHOD|SPARSITY|LR|FRACTION|EPOCHS|STUDENT|COMMAND".
attack() {
  _params="$1|$2|$3|$4|$5|$6|$7|$8"
  shift 8
  printf '%s|%s %s\n' "$_params" "$(words "$ACTIVEIP" "$@")" "$COMMON"
}

# scratch NET LR FRACTION EPOCHS [SCHEDULE WARMUP]: on a locked model (with SCRATCH=1), the thief's
# alternative to a fine-tuning or distillation attack: NET trained from scratch by `activeip train
# --fraction` on the attack's records (the same --fraction, the default --seed both take, the same
# --limit-train) for the same epochs, learning rate and schedule. Each distinct run once, after
# the attacks: its line is kept in SCRATCH_LINES. Its "report" is the train log's last epoch.
SCRATCH_LINES=""
scratch() {
  [ "$LOCKED" = 1 ] && [ "$SCRATCH" = 1 ] || return 0
  _net=$1 _lr=$2 _f=$3 _e=$4 _sched=${5:-} _warmup=${6:-}
  _id="scratch-$_net-lr$_lr-f$_f-e$_e${_sched:+-$_sched-w$_warmup}"
  case "
$SCRATCH_LINES" in *"
$_id|"*) return 0 ;; esac
  # shellcheck disable=SC2046
  _line=$(printf '%s|scratch|scratch||%s|%s|%s|%s|%s %s' "$_id" "$_lr" "$_f" "$_e" "$_net" \
    "$(words "$ACTIVEIP" train --net "$_net" --fraction "$_f" --epochs "$_e" --lr "$_lr" \
         ${_sched:+--schedule "$_sched" --warmup "$_warmup"} --out "$M/$_id.safetensors" \
         --log "$OUT_DIR/logs/$_id.jsonl")" "$TRAIN_COMMON")
  SCRATCH_LINES="$SCRATCH_LINES${SCRATCH_LINES:+
}$_line"
}

# grid: the plan, every attack in order, on stdout.
grid() {
  M="$OUT_DIR/models"
  # The model as it is (global pruning at sparsity 0 changes nothing): whether the protection
  # was there before any attack, so that an attack is not blamed for its absence.
  attack baseline baseline none 0 "" "" 0 "" \
    prune --model "$MODEL" --method global --sparsity 0 --out "$M/baseline.safetensors"

  for method in $PRUNE_METHODS; do
    for s in $SPARSITIES; do
      if [ "$method" != fineprune ]; then
        id="prune-$method-s$s"
        attack "$id" prune "$method" "$s" "" "" 0 "" \
          prune --model "$MODEL" --method "$method" --sparsity "$s" --out "$M/$id.safetensors"
      fi
      case " $PRUNE_FT_SPARSITIES " in *" $s "*) ;; *) continue ;; esac
      for f in $PRUNE_FRACTIONS; do
        id="prune-$method-s$s-f$f-e$EPOCHS-lr$PRUNE_LR"
        attack "$id" prune "$method" "$s" "$PRUNE_LR" "$f" "$EPOCHS" "" \
          prune --model "$MODEL" --method "$method" --sparsity "$s" --out "$M/$id.safetensors" \
          --finetune-epochs "$EPOCHS" --fraction "$f" --lr "$PRUNE_LR"
      done
    done
  done

  for mode in $MODES; do
    for lr in $LRS; do
      for f in $FRACTIONS; do
        id="finetune-$mode-lr$lr-f$f-e$EPOCHS"
        SCHED=""
        if [ "$lr" = "$LARGE_LR" ]; then
          id="$id-w$LARGE_WARMUP"
          SCHED="--warmup $LARGE_WARMUP --schedule cosine"
        fi
        # shellcheck disable=SC2086
        attack "$id" finetune "$mode" "" "$lr" "$f" "$EPOCHS" "" \
          finetune --model "$MODEL" --mode "$mode" --lr "$lr" --fraction "$f" --epochs "$EPOCHS" $SCHED \
          --out "$M/$id.safetensors"
        if [ -n "$SCHED" ]; then scratch "$MODEL_NET" "$lr" "$f" "$EPOCHS" cosine "$LARGE_WARMUP"
        else scratch "$MODEL_NET" "$lr" "$f" "$EPOCHS"; fi
      done
    done
  done

  # The fine-tuning attacks named one by one (settings the grid does not hold: another
  # schedule, more epochs, another fraction).
  for run in $FINETUNE_RUNS; do
    mode=$(echo "$run" | cut -d: -f1) lr=$(echo "$run" | cut -d: -f2) f=$(echo "$run" | cut -d: -f3)
    epochs=$(echo "$run" | cut -s -d: -f4) sched=$(echo "$run" | cut -s -d: -f5) warmup=$(echo "$run" | cut -s -d: -f6)
    [ -n "$epochs" ] || { echo "error: FINETUNE_RUNS entry '$run' is not MODE:LR:FRACTION:EPOCHS[:SCHEDULE[:WARMUP]]" >&2; exit 2; }
    sched=${sched:-cosine} warmup=${warmup:-0}
    id="finetune-$mode-lr$lr-f$f-e$epochs-$sched-w$warmup"
    attack "$id" finetune "$mode" "" "$lr" "$f" "$epochs" "" \
      finetune --model "$MODEL" --mode "$mode" --lr "$lr" --fraction "$f" --epochs "$epochs" --schedule "$sched" \
      --warmup "$warmup" --out "$M/$id.safetensors"
    scratch "$MODEL_NET" "$lr" "$f" "$epochs" "$sched" "$warmup"
  done

  if [ -n "$DISTILL" ]; then
    if "$ACTIVEIP" distill --help 2>/dev/null | grep -q -- '--teacher'; then
      for net in $DISTILL; do
        for f in $FRACTIONS; do
          id="distill-$net-f$f-e$DISTILL_EPOCHS-lr$DISTILL_LR-t$TEMPERATURE"
          attack "$id" distill distill "" "$DISTILL_LR" "$f" "$DISTILL_EPOCHS" "$net" \
            distill --teacher "$MODEL" --net "$net" --out "$M/$id.safetensors" --fraction "$f" \
            --epochs "$DISTILL_EPOCHS" --lr "$DISTILL_LR" --temperature "$TEMPERATURE"
          scratch "$net" "$DISTILL_LR" "$f" "$DISTILL_EPOCHS"
        done
      done
    else
      echo "note: this build has no \`activeip distill\`: distillation skipped" >&2
    fi
  fi

  # The attacker's preprocessing in front of the model as it is: nothing is trained or written.
  if [ -n "$TRANSFORMS" ]; then
    if "$ACTIVEIP" transform --help >/dev/null 2>&1; then
      for spec in $TRANSFORMS; do
        id="transform-$(echo "$spec" | tr ':' '-')-seed$TRANSFORM_SEED"
        # shellcheck disable=SC2046
        attack "$id" transform "$spec" "" "" "" 0 "" \
          transform --model "$MODEL" $(echo "$spec" | tr '+' '\n' | awk 'NF { printf " --transform %s", $0 }') \
          --seed "$TRANSFORM_SEED"
      done
    else
      echo "note: this build has no \`activeip transform\`: input transforms skipped" >&2
    fi
  fi

  # The weights rounded to integers, as a thief does before deploying: nothing is trained.
  if [ -n "$QUANTIZE" ]; then
    if "$ACTIVEIP" quantize --help >/dev/null 2>&1; then
      for bits in $QUANTIZE; do
        id="quantize-int$bits-channel"
        attack "$id" quantize "int$bits" "" "" "" 0 "" \
          quantize --model "$MODEL" --bits "$bits" --out "$M/$id.safetensors"
      done
    else
      echo "note: this build has no \`activeip quantize\`: quantization skipped" >&2
    fi
  fi

  # A locked model: the token reverse-engineered on each attacker fraction (activeip invert).
  if [ "$LOCKED" = 1 ] && [ -n "$INVERT_STEPS" ]; then
    for f in $FRACTIONS; do
      id="invert-f$f-s$INVERT_STEPS"
      printf '%s|invert|invert|||%s|0||%s %s\n' "$id" "$f" \
        "$(words "$ACTIVEIP" invert --model "$MODEL" --fraction "$f" --steps "$INVERT_STEPS")" "$INVERT_COMMON"
    done
  fi

  [ -z "$SCRATCH_LINES" ] || printf '%s\n' "$SCRATCH_LINES"
}

# The grid, enumerated once; a temporary copy until it replaces OUT_DIR/plan.txt.
GRID=$(mktemp)
CLAIMS="" WORKERS=""
trap 'rm -f "$GRID"; [ -z "$CLAIMS" ] || rm -rf "$CLAIMS"' EXIT
grid >"$GRID"

if [ "$MODE" = plan ]; then
  # shellcheck disable=SC2034  # the parameters are read to reach the command
  awk -v i="$SHARD_I" -v n="$SHARD_N" '(NR - 1) % n == i' "$GRID" |
    while IFS='|' read -r id family method sparsity lr fraction epochs student command; do
      printf '%s\t%s --device %s\n' "$id" "$command" "$(q "$(device_of 0)")"
    done
  exit 0
fi

mkdir -p "$OUT_DIR/json" "$OUT_DIR/logs" "$OUT_DIR/models"
# The shards of one grid write the same plan: each replaces it whole, and reads its own copy.
_tmp=$(mktemp "$OUT_DIR/.plan.XXXXXX")
cp "$GRID" "$_tmp" && mv -f "$_tmp" "$PLAN"
ATTACKS=$(grep -c . "$GRID")

if [ "$MODE" = slurm ]; then
  command -v sbatch >/dev/null || { echo "error: --slurm needs sbatch (Slurm's client) on PATH" >&2; exit 1; }
  tasks=${TASKS:-$ATTACKS}
  [ "$tasks" -le "$ATTACKS" ] || tasks=$ATTACKS
  batch="$OUT_DIR/sweep.sbatch"
  {
    echo '#!/bin/sh'
    echo "# The attack sweep of $OUT_DIR as a Slurm array job, written by scripts/attack_sweep.sh --slurm:"
    echo "# task I of $tasks runs shard I/$tasks of the grid ($ATTACKS attacks) with the knobs of its submission."
    for v in $KNOBS; do
      _set="" _value=""
      eval "_set=\${$v+1} _value=\${$v-}"
      [ -z "$_set" ] || printf 'export %s=%s\n' "$v" "$(q "$_value")"
    done
    echo "cd $(q "$PWD")"
    # shellcheck disable=SC2016  # $SLURM_ARRAY_TASK_ID is the task's
    printf 'exec sh %s --shard "$SLURM_ARRAY_TASK_ID/%s"%s %s\n' "$(q "$SELF")" "$tasks" \
      "${PARALLEL_GIVEN:+ --parallel $PARALLEL_GIVEN}" "$(words "$MODEL" "$KEY" "$REGISTRY" "$DATASET" "$OUT_DIR")"
  } >"$batch.tmp"
  mv -f "$batch.tmp" "$batch"
  # The name and the log files first, so that the options given after --slurm can replace them.
  set -- --parsable --job-name=attack-sweep --output="$OUT_DIR/logs/slurm-%A_%a.out" --array="0-$((tasks - 1))" "$@" "$batch"
  words sbatch "$@"
  echo
  rc=0
  job=$(sbatch "$@") || rc=$?
  [ -n "$job" ] || { echo "error: sbatch did not submit the sweep (exit status $rc)" >&2; exit 1; }
  job=${job%%;*}
  echo "job $job: $tasks array tasks over $ATTACKS attacks; their logs: $OUT_DIR/logs/slurm-${job}_*.out"
  [ "$rc" -eq 0 ] || echo "sbatch exited with status $rc (a task failed or the wait ended early)"
  echo "once the job has finished: $(words "$SELF" --collect "$OUT_DIR")"
  exit "$rc"
fi

now() { python3 -c 'import time; print("%.3f" % time.time())'; }

# run_attack DEVICE ID FAMILY METHOD SPARSITY LR FRACTION EPOCHS STUDENT COMMAND
# Runs one attack on DEVICE unless its report exists, and leaves json/ID.json (the report with a
# "sweep" field) or json/ID.failed.json (the parameters and the error); fails when the attack did.
run_attack() {
  id=$2 family=$3 method=$4 sparsity=$5 lr=$6 fraction=$7 epochs=$8 student=$9 command="${10} --device $(q "$1")"
  json="$OUT_DIR/json/$id.json" log="$OUT_DIR/logs/$id.log"
  if [ "$SKIP_EXISTING" = 1 ] && [ -f "$json" ]; then
    echo "skip $id (report exists)"
    return 0
  fi
  rm -f "$OUT_DIR/json/$id.failed.json" "$json.tmp"
  echo "run  $id${WORKER_NOTE:-}"
  t0=$(now)
  rc=0
  echo "$command" >"$log"
  eval "set -- $command"
  # In the background, so that the worker's trap can stop it.
  "$@" </dev/null >"$json.tmp" 2>>"$log" &
  child=$!
  wait "$child" || rc=$?
  child=""
  t1=$(now)
  result=0
  python3 - "$json" "$rc" "$t0" "$t1" "$family" "$method" "$sparsity" "$lr" "$fraction" "$epochs" \
      "$student" "$log" "$command" <<'PY' || { result=1; echo "     $id failed: see $log"; }
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
elif family == "scratch":
    # `activeip train` prints no JSON: its report is the --log's start event and last epoch (the
    # test split's accuracy, measured as the attacks measure clean accuracy).
    train_log = os.path.join(os.path.dirname(os.path.dirname(path)), "logs",
                             os.path.basename(path)[:-len(".json")] + ".jsonl")
    try:
        events = [json.loads(l) for l in open(train_log) if l.strip()]
        start = [e for e in events if e.get("event") == "start"][-1]
        last = [e for e in events if e.get("event") == "epoch"][-1]
        report = {"dataset": start["data"], "net": start["net"], "clean_accuracy": last["test_accuracy"],
                  "train_size": start["train_size"], "test_size": start["test_size"],
                  "attack": {"kind": "scratch", "fraction": float(fraction), "train": start["config"]}}
    except (OSError, ValueError, KeyError, IndexError) as e:
        error = f"unreadable training log {train_log}: {e!r}"
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
  return "$result"
}

# worker DEVICE: runs the attacks of this invocation's share that no other worker has claimed
# (a claim is a directory made atomically); fails when one of its attacks did.
worker() {
  trap - EXIT  # the EXIT trap is the invocation's, not its workers'
  child=""
  trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 143' TERM
  failed=0
  while IFS='|' read -r id family method sparsity lr fraction epochs student command; do
    mkdir "$CLAIMS/$id" 2>/dev/null || continue
    run_attack "$1" "$id" "$family" "$method" "$sparsity" "$lr" "$fraction" "$epochs" "$student" "$command" \
      || failed=$((failed + 1))
  done <"$CLAIMS/share"
  [ "$failed" -eq 0 ]
}

CLAIMS=$(mktemp -d "$OUT_DIR/.claims.XXXXXX")
awk -v i="$SHARD_I" -v n="$SHARD_N" '(NR - 1) % n == i' "$GRID" >"$CLAIMS/share"
SHARE=$(grep -c . "$CLAIMS/share" || true)
stop_workers() { for p in $WORKERS; do kill "$p" 2>/dev/null || true; done; exit "$1"; }
trap 'stop_workers 130' INT
trap 'stop_workers 143' TERM
j=0
while [ "$j" -lt "$PARALLEL" ]; do
  WORKER_NOTE=""
  [ "$PARALLEL" -eq 1 ] || WORKER_NOTE=" (worker $j, $(device_of "$j"))"
  worker "$(device_of "$j")" &
  WORKERS="$WORKERS $!"
  j=$((j + 1))
done
failed_workers=0
for p in $WORKERS; do wait "$p" || failed_workers=$((failed_workers + 1)); done
WORKERS=""
trap - INT TERM

if [ "$SHARD_N" -gt 1 ]; then
  echo "shard $SHARD_I/$SHARD_N: $SHARE of $ATTACKS attacks$([ "$failed_workers" -eq 0 ] || echo ', some failed')"
  echo "once every shard has finished: $(words "$SELF" --collect "$OUT_DIR")"
  [ "$failed_workers" -eq 0 ] || exit 1
  exit 0
fi
collect || exit 1
