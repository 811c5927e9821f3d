# shellcheck shell=sh
# Sourced by the sweep tests (attack_sweep_test.sh, slurm_sweep_test.sh): the tiny sweep they run.
# sweep_fixture DIR BUILD_DIR copies the suite's protected convnet on `synthetic`
# (tests/fixtures/protected: alice and bob embedded) to DIR/model.safetensors, DIR/owner.key and
# DIR/users.db, its key made private again (git keeps no file modes but the executable bit), and
# exports the knobs of a minimal grid: sparsities 0 and 0.5 for each pruning method, fine-tuned
# after pruning at 0.5 only, ftll and ftal at one rate, one fraction, distillation into a convnet
# when the build has `distill` (DISTILL says which), two input transforms (a flip and a chain),
# int4 quantization, one fine-tuning attack named in FINETUNE_RUNS; the forged keys seeded, so
# that two runs of the grid agree.
sweep_fixture() {
  _fixture="$ROOT/tests/fixtures/protected"
  cp "$_fixture/owner.key" "$_fixture/users.db" "$1/"
  cp "$_fixture/m.safetensors" "$1/model.safetensors"
  chmod 600 "$1/owner.key" "$1/users.db"
  BUILD_DIR=$2
  DISTILL=""
  if "$BUILD_DIR/cli/activeip" distill --help 2>/dev/null | grep -q -- '--teacher'; then DISTILL=convnet; fi
  export BUILD_DIR THREADS=2 EPOCHS=1 FRACTIONS=0.1 SPARSITIES="0.0 0.5" PRUNE_FT_SPARSITIES=0.5 MODES="ftll ftal" \
    LRS=0.01 PROBES=10 COUNT=5 FORGE_SEED=1 LIMIT_TRAIN=256 LIMIT_TEST=64 DISTILL TRANSFORMS="flip median:3+jpeg:50" \
    QUANTIZE=4 FINETUNE_RUNS="ftal:0.05:0.2:1:step"
}

# locked_fixture DIR: the suite's locked convnet on `synthetic` (tests/fixtures/locked: alice and bob
# unlock it, carol revoked) as DIR/locked.safetensors, DIR/locked.key and DIR/locked.db.
locked_fixture() {
  _fixture="$ROOT/tests/fixtures/locked"
  cp "$_fixture/owner.key" "$1/locked.key"
  cp "$_fixture/users.db" "$1/locked.db"
  cp "$_fixture/m.safetensors" "$1/locked.safetensors"
  chmod 600 "$1/locked.key" "$1/locked.db"
}

# same_rows A.csv B.csv: the two sweeps' CSVs hold the same rows in the same order, every column
# compared but `seconds` (each attack's wall time, the only one that is timing).
same_rows() {
  python3 - "$1" "$2" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert a, f"{sys.argv[1]} has no rows"
strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
for i, (x, y) in enumerate(zip(strip(a), strip(b))):
    diff = {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)}
    assert not diff, f"row {i + 1} ({x['id']}) differs: {diff}"
assert len(a) == len(b), f"{len(a)} rows against {len(b)}"
assert a[0].keys() == b[0].keys(), "the columns differ"
PY
}
