#!/bin/sh
# ctest: scripts/attack_sweep.sh on a protected convnet on `synthetic` (2 users), into a
# temporary folder: the minimal sweep of tests/sweep_fixture.sh must write every attack's report
# and one CSV row each with the documented columns; plot_attacks.py must write attacks.md from
# it. --plan prints the same grid; the grid run as two shards (one with two workers) and
# collected gives the same CSV (all but the seconds); bad options exit 2. A rerun with
# SKIP_EXISTING skips the finished attacks, records a failing one in the CSV with its error and
# exits 1; plot_attacks.py merges both runs' CSVs by id. On the suite's locked model the CSV has
# the lock's columns and each fine-tuning's and distillation's from-scratch alternative, sharded or
# not. Skipped (77) without python3.
set -eu
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "attack_sweep test: $1"; [ -f "$TMP/log" ] && tail -40 "$TMP/log"; exit 1; }
. "$ROOT/tests/sweep_fixture.sh"
sweep_fixture "$TMP" "$1"
SWEEP="$ROOT/scripts/attack_sweep.sh"
ARGS="$TMP/model.safetensors $TMP/owner.key $TMP/users.db synthetic"  # mktemp's names have no spaces

OUT="$TMP/sweep"
# shellcheck disable=SC2086
"$SWEEP" $ARGS "$OUT" >"$TMP/log" 2>&1 || fail "the sweep failed"

# The baseline; global, layer and filter: 2 sparsities without fine-tuning + 0.5 fine-tuned on
# 1 fraction; fineprune: 0.5 fine-tuned; fine-tuning: 2 modes x 1 rate x 1 fraction;
# distillation: 1 student x 1 fraction; transforms: 2; quantization: 1; named fine-tuning: 1.
expected=$((1 + 3 + 3 + 3 + 1 + 2 + 2 + 1 + 1))
[ -n "$DISTILL" ] && expected=$((expected + 1))
python3 - "$OUT/attacks.csv" "$expected" "$DISTILL" <<'PY' || fail "CSV check"
import csv, sys
path, expected, distill = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = list(csv.DictReader(open(path)))
need = ["family", "method", "sparsity", "lr", "fraction", "epochs", "student", "clean_accuracy",
        "accuracy_drop", "owner_detection", "owner_verified", "users_authenticated", "users_count",
        "users_min_detection", "forged_passed", "forged_count", "forged_max_detection", "seconds", "error"]
cols = rows[0].keys() if rows else []
missing = [c for c in need if c not in cols]
assert not missing, f"missing columns {missing}"
assert len(rows) == expected, f"{len(rows)} rows, expected {expected}"
for r in rows:
    assert not r["error"], f"{r['id']} failed: {r['error']}"
    assert 0 <= float(r["clean_accuracy"]) <= 1, r
    assert r["owner_verified"] in ("0", "1"), r
    assert r["users_count"] == "2" and r["forged_count"] == "5", r
    assert float(r["seconds"]) > 0, r
kinds = sorted((r["family"], r["method"], r["sparsity"], r["epochs"]) for r in rows)
want = [("baseline", "none", "0", "0")]
for m in ("global", "layer", "filter"):
    want += [("prune", m, "0.0", "0"), ("prune", m, "0.5", "0"), ("prune", m, "0.5", "1")]
want += [("prune", "fineprune", "0.5", "1")]
want += [("finetune", "ftal", "", "1"), ("finetune", "ftll", "", "1"), ("finetune", "ftal", "", "1")]
want += [("transform", "flip", "", "0"), ("transform", "median:3+jpeg:50", "", "0")]
want += [("quantize", "int4", "", "0")]
if distill:
    want += [("distill", "distill", "", "1")]
assert kinds == sorted(want), f"attacks {kinds}\n expected {sorted(want)}"
half = [r for r in rows if r["family"] == "prune" and r["method"] == "global" and r["sparsity"] == "0.5"]
assert all(abs(float(r["weight_sparsity"]) - 0.5) < 1e-3 for r in half), half
named = [r for r in rows if r["id"] == "finetune-ftal-lr0.05-f0.2-e1-step-w0"]
assert len(named) == 1 and named[0]["schedule"] == "step" and named[0]["fraction"] == "0.2", named
assert all(r["fraction"] == "0.1" and r["lr"] == "0.01" for r in rows if r["family"] == "finetune" and r not in named)
# A transform changes no weight: its report is the model's own, measured behind the preprocessing.
import json, os
for r in rows:
    if r["family"] == "transform":
        j = json.load(open(os.path.join(os.path.dirname(path), r["json"])))
        assert j["attack"]["kind"] == "transform" and j["out"] is None, j["attack"]
        assert j["attack"]["transforms"] == r["method"].split("+"), j["attack"]
        assert r["original_accuracy"] == next(b["original_accuracy"] for b in rows if b["family"] == "baseline"), r
PY
# --plan: the same grid, one line per attack (its ID, a tab, its command), in the CSV's order.
# shellcheck disable=SC2086
"$SWEEP" --plan $ARGS "$OUT" >"$TMP/plan" 2>"$TMP/log" || fail "--plan failed"
python3 - "$TMP/plan" "$OUT/attacks.csv" "$BUILD_DIR/cli/activeip" <<'PY' || fail "--plan check"
import csv, sys
plan = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
ids = [r["id"] for r in csv.DictReader(open(sys.argv[2]))]
assert [p[0] for p in plan] == ids, f"--plan lists {[p[0] for p in plan]}\n the CSV {ids}"
assert all(len(p) == 2 and p[1].startswith(sys.argv[3] + " ") and p[1].endswith(" --device cpu") for p in plan), plan
PY

# Two shards, the first with two workers, into a fresh folder, then --collect: the same CSV.
# shellcheck disable=SC2086
{ "$SWEEP" --shard 0/2 --parallel 2 $ARGS "$TMP/sharded" && "$SWEEP" $ARGS "$TMP/sharded" --shard 1/2; } \
  >"$TMP/log" 2>&1 || fail "a shard failed"
grep -q '^shard 1/2: [0-9]* of [0-9]* attacks$' "$TMP/log" || fail "no shard summary"
[ ! -f "$TMP/sharded/attacks.csv" ] || fail "a shard wrote the CSV"
"$SWEEP" --collect "$TMP/sharded" >"$TMP/log" 2>&1 || fail "--collect failed"
same_rows "$OUT/attacks.csv" "$TMP/sharded/attacks.csv" >"$TMP/log" 2>&1 || fail "the sharded sweep's CSV differs"
[ -f "$TMP/sharded/attacks.md" ] || fail "--collect wrote no attacks.md"
[ -z "$(find "$TMP/sharded" -name '.claims.*')" ] || fail "claims left behind"

# Usage errors exit 2 naming the option; --collect of a folder without a plan exits 1.
for bad in "--shard 2/2" "--shard 1" "--shard x/2" "--parallel 0" "--tasks 2" "--bogus"; do
  rc=0
  # shellcheck disable=SC2086
  "$SWEEP" $bad $ARGS "$TMP/bad" >"$TMP/log" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || fail "'$bad' gave exit status $rc, expected 2"
  grep -q "^error: .*${bad%% *}" "$TMP/log" || fail "'$bad': no error naming it"
done
rc=0
"$SWEEP" --collect "$TMP/bad" >"$TMP/log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "--collect without a plan gave exit status $rc, expected 1"
[ ! -e "$TMP/bad" ] || fail "a refused invocation wrote $TMP/bad"

n=$(find "$OUT/json" -name '*.json' ! -name '*.failed.json' | wc -l)
[ "$n" -eq "$expected" ] || fail "$n reports in json/, expected $expected"
[ -z "$(find "$OUT/models" -name '*.safetensors')" ] || fail "attacked models kept without KEEP_MODELS"

python3 "$ROOT/scripts/plot_attacks.py" "$OUT/attacks.csv" "$OUT" >"$TMP/log" 2>&1 || fail "plot_attacks.py failed"
md="$OUT/attacks.md"
for h in '# Attack sweep' '## Where an attack removed the protection' '## Against the targets' \
         '## Every attack' '## Plots'; do
  grep -q "^$h\$" "$md" || fail "attacks.md has no '$h'"
done
rows=$(grep -c '^| \(no attack\|prune\|finetune\|distill\|transform\|quantize\)' "$md")
[ "$rows" -eq "$expected" ] || fail "attacks.md has $rows attack rows, expected $expected"
if python3 -c 'import matplotlib' 2>/dev/null; then
  for p in prune_global prune_layer prune_filter prune_fineprune finetune_ftll finetune_ftal transforms; do
    [ -f "$OUT/$p.png" ] || fail "no plot $p.png"
    grep -q "($p.png)" "$md" || fail "plot $p.png not linked"
  done
else
  grep -q 'Plots skipped: matplotlib is not installed' "$md" || fail "no note on skipped plots"
fi

# Resume: the finished attacks are skipped; an attack the CLI refuses (an unknown mode) is a CSV
# row with its error, the others still run, and the sweep exits 1. (PRUNE_FT_SPARSITIES is still
# 0.5, so sparsity 0.0 is not fine-tuned: 4 rows.)
cp "$OUT/attacks.csv" "$TMP/first.csv"
rc=0
# shellcheck disable=SC2086
PRUNE_METHODS=global SPARSITIES=0.0 MODES="ftll nosuchmode" DISTILL="" TRANSFORMS="" QUANTIZE="" FINETUNE_RUNS="" \
  SKIP_EXISTING=1 "$SWEEP" $ARGS "$OUT" >"$TMP/log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a failed attack gave exit status $rc, expected 1"
grep -q '^skip finetune-ftll-' "$TMP/log" || fail "the finished ftll attack was not skipped"
grep -q '^skip prune-global-s0.0 ' "$TMP/log" || fail "the finished pruning attack was not skipped"
python3 - "$OUT/attacks.csv" <<'PY' || fail "CSV check after the failure"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 4, [r["id"] for r in rows]
bad = [r for r in rows if r["error"]]
assert len(bad) == 1 and bad[0]["method"] == "nosuchmode" and "exit 2" in bad[0]["error"], bad
assert all(r["clean_accuracy"] for r in rows if not r["error"])
PY
python3 "$ROOT/scripts/plot_attacks.py" "$OUT/attacks.csv" "$OUT" --no-plots >"$TMP/log" 2>&1 || fail "plot after failure"
grep -q '^## Failed attacks' "$OUT/attacks.md" || fail "attacks.md does not list the failed attack"
# Both invocations' CSVs as one: the rerun's rows replace the first's by id, the new one is added.
python3 "$ROOT/scripts/plot_attacks.py" "$TMP/first.csv" "$OUT/attacks.csv" "$TMP/merged" --no-plots >"$TMP/log" 2>&1 \
  || fail "plot of two CSVs"
grep -q ": $((expected + 1)) attacks, 1 failed;" "$TMP/merged/attacks.md" || fail "merged CSVs: not $((expected + 1)) attacks, 1 failed"

# Invented numbers (never measured) where the protection is there before the attacks: the
# summary must name each attack that removed it, what was lost and the accuracy it cost.
cat >"$TMP/fixture.csv" <<'CSV'
id,family,method,sparsity,lr,fraction,epochs,student,clean_accuracy,original_accuracy,accuracy_drop,owner_detection,owner_p_value,owner_verified,users_authenticated,users_count,users_min_detection,forged_passed,forged_count,forged_max_detection,seconds,error
baseline,baseline,none,0,,,0,,0.9,0.9,0.0,1.0,1e-30,1,20,20,0.97,0,1000,0.3,5,
prune-global-s0.9,prune,global,0.9,,,0,,0.6,0.9,0.3,0.2,0.5,0,3,20,0.1,0,1000,0.3,5,
finetune-ftal-lr0.08-f0.1-e2-w1,finetune,ftal,,0.08,0.1,2,,0.885,0.9,0.015,0.95,1e-20,1,15,20,0.5,0,1000,0.3,60,
finetune-ftll-lr0.01-f0.1-e2,finetune,ftll,,0.01,0.1,2,,0.899,0.9,0.001,1.0,1e-30,1,20,20,0.95,0,1000,0.3,60,
CSV
python3 "$ROOT/scripts/plot_attacks.py" "$TMP/fixture.csv" "$TMP/fixture" --no-plots >"$TMP/log" 2>&1 || fail "plot fixture"
md="$TMP/fixture/attacks.md"
grep -q '^\*\*Protection survived 1 of 3 attacks; 2 removed it.\*\*$' "$md" || fail "fixture: survival count"
grep -q 'prune global, sparsity 0.9, no fine-tuning\*\* removed the protection: the owner is no longer verified (detection 0.200, p = 0.5) and only 3/20 users authenticate (weakest detection 0.100); it cost 30.00 points of clean accuracy (90.00% → 60.00%)' "$md" \
  || fail "fixture: the pruning that removed the protection"
grep -q 'finetune ftal, lr 0.08, 10% of the data, 2 epochs\*\* removed the protection: only 15/20 users authenticate' "$md" \
  || fail "fixture: the fine-tuning that removed user authentication"
grep -q 'Fine-tuning: 1 of 2 attacks kept clean accuracy within 1 point .* verified in 1/1 (100%)' "$md" || fail "fixture: targets"

# A file that is not a sweep CSV is refused with exit status 1.
echo 'a,b' >"$TMP/bad.csv"
if python3 "$ROOT/scripts/plot_attacks.py" "$TMP/bad.csv" "$TMP/bad" 2>"$TMP/err"; then fail "accepted a bad CSV"; fi
grep -q '^error: ' "$TMP/err" || fail "no error message for a bad CSV"
# A locked model: the lock's columns in place of the users' and forged ones; each fine-tuning and
# distillation beside its from-scratch alternative (one run per distinct training, shared by the
# modes), the grid run as two shards; a transform reports the lock too.
locked_fixture "$TMP"
LARGS="$TMP/locked.safetensors $TMP/locked.key $TMP/locked.db synthetic"
LOCKED_KNOBS="PRUNE_METHODS=global SPARSITIES=0.5 PRUNE_FT_SPARSITIES=none TRANSFORMS=flip QUANTIZE= FINETUNE_RUNS=
INVERT_STEPS=5"
# As two shards and --collect (the scratch runs are jobs of the grid like any attack).
# shellcheck disable=SC2086
{ env $LOCKED_KNOBS "$SWEEP" --shard 0/2 $LARGS "$TMP/locked" && env $LOCKED_KNOBS "$SWEEP" --shard 1/2 $LARGS "$TMP/locked" &&
  "$SWEEP" --collect "$TMP/locked"; } >"$TMP/log" 2>&1 || fail "the locked sweep failed"
python3 - "$TMP/locked/attacks.csv" "$DISTILL" <<'PY' || fail "locked CSV check"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
distill = sys.argv[2]
cols = list(rows[0].keys())
need = ["clean_accuracy", "owner_detection", "owner_verified", "authorized_min_accuracy", "authorized_mean_accuracy",
        "authorized_users", "unauthorized_accuracy", "forged_count", "forged_mean_accuracy", "forged_max_accuracy",
        "lock_n", "scratch_accuracy", "scratch_gap", "inverted_accuracy", "inverted_position"]
missing = [c for c in need if c not in cols]
assert not missing, f"missing columns {missing}"
assert not [c for c in cols if c.startswith("users_")], cols
fam = sorted(r["family"] for r in rows)
want = ["baseline", "finetune", "finetune", "invert", "prune", "scratch", "transform"] + \
    (["distill", "scratch"] if distill else [])
assert fam == sorted(want), fam
for r in rows:
    assert not r["error"], f"{r['id']} failed: {r['error']}"
    assert 0 <= float(r["clean_accuracy"]) <= 1, r
    if r["family"] == "scratch":
        assert r["student"] == "convnet" and not r["authorized_min_accuracy"], r
        continue
    if r["family"] == "invert":  # the model unchanged: what the recovered patch unlocks, beside the users' own
        assert 0 <= float(r["inverted_accuracy"]) <= 1, r
        assert r["inverted_position"] in ("top-left", "top-right", "bottom-left", "bottom-right", "center"), r
        assert r["authorized_users"] == "2" and 0 <= float(r["unauthorized_accuracy"]) <= 1, r
        assert r["clean_accuracy"] == r["unauthorized_accuracy"] and r["scratch_gap"] == "", r
        continue
    assert r["inverted_accuracy"] == "", r
    for c in ("authorized_min_accuracy", "authorized_mean_accuracy", "unauthorized_accuracy", "forged_mean_accuracy",
              "forged_max_accuracy"):
        assert 0 <= float(r[c]) <= 1, (c, r)
    assert float(r["authorized_min_accuracy"]) <= float(r["authorized_mean_accuracy"]) + 1e-12, r
    assert r["authorized_users"] == "2" and r["forged_count"] == "5" and r["lock_n"] == "10", r
    assert r["owner_verified"] in ("0", "1"), r
    if r["family"] in ("finetune", "distill"):
        s = float(r["scratch_accuracy"])
        assert 0 <= s <= 1 and abs(float(r["scratch_gap"]) - (float(r["clean_accuracy"]) - s)) < 1e-6, r
    else:
        assert r["scratch_accuracy"] == "" and r["scratch_gap"] == "", r
base = next(r for r in rows if r["family"] == "baseline")
# The fixture is locked: its users unlock it, clean inputs do not.
assert float(base["authorized_min_accuracy"]) > float(base["unauthorized_accuracy"]) + 0.4, base
assert base["owner_verified"] == "1", base
# ftll and ftal train alike from scratch: one run, joined to both.
ft = [r for r in rows if r["family"] == "finetune"]
assert ft[0]["scratch_accuracy"] == ft[1]["scratch_accuracy"], ft
PY
grep -q '^## Unlocking against training from scratch$' "$TMP/locked/attacks.md" || fail "locked attacks.md: no scratch section"
grep -q '^| no attack (the locked model as it is) |' "$TMP/locked/attacks.md" || fail "locked attacks.md: no table"
grep -q '^- \*\*invert the token: a lock-sized patch optimised on' "$TMP/locked/attacks.md" \
  || fail "locked attacks.md: no token inversion"
[ "$(grep -c '^scratch-' "$TMP/locked/plan.txt")" -eq "$([ -n "$DISTILL" ] && echo 2 || echo 1)" ] \
  || fail "the locked plan does not train each from-scratch alternative once"
echo "attack_sweep.sh: ok"
