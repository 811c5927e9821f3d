#!/bin/sh
# Every GPU benchmark in one go, on the GPU machine: `activeip bench conv`, `bench gemm` and
# `bench train` (ours and cuDNN/cuBLAS side by side), bench/pytorch_peer.py (the same models
# and batches in PyTorch), optionally time to 92% on CIFAR-10 for resnet18 in both engines
# (--tta); then one results file bench/results/<date>-<gpu>.json (GPU, driver, CUDA, cuDNN
# and PyTorch versions, every figure and ratio) and docs/benchmarks.md (+ PNG plots in
# docs/benchmarks/) rendered from it by bench/render.py.
#
#   bench/run_all.sh [--tta] [--only conv,gemm,train,pytorch,tta] [--parts DIR] [--no-render]
#   bench/run_all.sh --cpu [--parts DIR] [--no-render]
#
# --cpu runs the CPU comparison instead, on any machine: `activeip bench train` and `bench infer`
# on the CPU and bench/pytorch_peer.py --device cpu (NCHW and channels_last) side by side, for
# CPU_NETS (resnet20:128 resnet18:64 vgg16:64, net:training batch) at each of CPU_THREADS
# (1 2) threads, inference at batch CPU_INFER_BATCH (256), CPU_WARMUP (2) untimed and
# CPU_STEPS (10) timed steps or passes, in each of CPU_PRECISIONS (fp32, and bf16 where the CPU
# has AVX512-BF16: ours with --precision bf16, PyTorch's amp-bf16-cl autocast beside its fp32
# configurations); then bench/results/<date>-cpu.json and the CPU section of
# docs/benchmarks.md. PyTorch comes from PyPI into the virtual environment VENV
# (.venv-bench; made and filled on first use) — never part of the build or the tests.
#
# Each part's JSON goes to the parts folder (default ${TMPDIR:-/tmp}/activeip-bench-<date>-<gpu>)
# and the merge takes every part found there, so a run may be split over several calls
# (e.g. --only conv,gemm,train, then --only pytorch). A part that fails is reported and left
# out; the exit status is then 1.
# Environment: BUILD_DIR (build; configured and built when its activeip is missing),
# DEVICE (cuda), DATA (cifar10 when data/cifar-10-batches-bin holds it, else synthetic), CONV_ARGS,
# GEMM_ARGS, TRAIN_ARGS, PEER_ARGS (extra options), TTA_EPOCHS (30), TTA_BATCH (256),
# TTA_LR (0.2), TTA_TARGET (0.92), RESULTS_DIR (bench/results), DOC (docs/benchmarks.md).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TTA=0
CPU=0
ONLY=""
PARTS=""
RENDER=1
while [ $# -gt 0 ]; do
  case $1 in
    --tta) TTA=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --parts) PARTS=${2:?--parts needs a folder}; shift ;;
    --no-render) RENDER=0 ;;
    --cpu) CPU=1 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$ONLY" ]; then
  ONLY=conv,gemm,train,pytorch
  if [ $TTA -eq 1 ]; then ONLY=$ONLY,tta; fi
fi
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# part NAME COMMAND…: runs COMMAND with stdout into $PARTS/NAME.json (stderr to NAME.log).
FAILED=""
part() {
  name=$1; shift
  echo "== $name: $*" >&2
  if "$@" >"$PARTS/$name.json.tmp" 2>"$PARTS/$name.log"; then
    mv "$PARTS/$name.json.tmp" "$PARTS/$name.json"
  else
    echo "!! $name failed (exit $?), see $PARTS/$name.log:" >&2
    tail -n 5 "$PARTS/$name.log" >&2
    # A validation failure still prints its JSON: keep it, flagged by its "all_valid".
    if [ -s "$PARTS/$name.json.tmp" ]; then mv "$PARTS/$name.json.tmp" "$PARTS/$name.json"; else rm -f "$PARTS/$name.json.tmp"; fi
    FAILED="$FAILED $name"
  fi
}

build_bin() {
  BUILD_DIR=${BUILD_DIR:-build}
  BIN="$BUILD_DIR/cli/activeip"
  if [ ! -x "$BIN" ]; then
    echo "== building $BIN" >&2
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >&2
    cmake --build "$BUILD_DIR" --target activeip -j "$(nproc)" >&2
  fi
}

if [ $CPU -eq 1 ]; then
  DATE=$(date +%Y-%m-%d)
  STEM="$DATE-cpu"
  PARTS=${PARTS:-${TMPDIR:-/tmp}/activeip-bench-$STEM}
  RESULTS_DIR=${RESULTS_DIR:-bench/results}
  DOC=${DOC:-docs/benchmarks.md}
  VENV=${VENV:-.venv-bench}
  mkdir -p "$PARTS" "$RESULTS_DIR"
  build_bin
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "== installing PyTorch from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch
  fi
  NETS=${CPU_NETS:-resnet20:128 resnet18:64 vgg16:64}
  W=${CPU_WARMUP:-2} S=${CPU_STEPS:-10} IB=${CPU_INFER_BATCH:-256}
  if [ -z "${CPU_PRECISIONS:-}" ]; then
    CPU_PRECISIONS=fp32
    grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && CPU_PRECISIONS="fp32 bf16"
  fi
  PEER_CONFIGS=eager-fp32,eager-fp32-cl
  case " $CPU_PRECISIONS " in *" bf16 "*) PEER_CONFIGS=$PEER_CONFIGS,amp-bf16-cl ;; esac
  echo "== CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, parts in $PARTS" >&2
  for t in ${CPU_THREADS:-1 2}; do
    for nb in $NETS; do
      net=${nb%%:*} b=${nb#*:}
      part "train-$net-t$t" "$BIN" bench train --device cpu --threads "$t" --nets "$net" --batch "$b" \
        --conv-impl custom --precision $CPU_PRECISIONS --warmup "$W" --steps "$S" --json
      part "peer-train-$net-t$t" "$VENV/bin/python" bench/pytorch_peer.py --device cpu --threads "$t" --nets "$net" \
        --batch "$b" --configs "$PEER_CONFIGS" --warmup "$W" --steps "$S"
      part "infer-$net-t$t" "$BIN" bench infer --device cpu --threads "$t" --nets "$net" --batch "$IB" \
        --conv-impl custom --precision $CPU_PRECISIONS --warmup "$W" --reps "$S" --json
      part "peer-infer-$net-t$t" "$VENV/bin/python" bench/pytorch_peer.py --device cpu --threads "$t" --mode infer \
        --nets "$net" --batch "$IB" --configs "$PEER_CONFIGS" --warmup "$W" --steps "$S"
    done
  done
  RESULT="$RESULTS_DIR/$STEM.json"
  python3 bench/merge_cpu.py "$PARTS" "$RESULT" "$DATE"
  if [ $RENDER -eq 1 ]; then python3 bench/render.py "$RESULT" --out "$DOC"; fi
  if [ -n "$FAILED" ]; then
    echo "!! failed parts:$FAILED" >&2
    exit 1
  fi
  echo "== done: $RESULT, $DOC" >&2
  exit 0
fi

command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: run this on the GPU machine" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 1; }
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)
GPU_TAG=$(printf '%s' "$GPU_NAME" | tr 'A-Z' 'a-z' | sed 's/nvidia//; s/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
DATE=$(date +%Y-%m-%d)
STEM="$DATE-$GPU_TAG"
PARTS=${PARTS:-${TMPDIR:-/tmp}/activeip-bench-$STEM}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
DOC=${DOC:-docs/benchmarks.md}
mkdir -p "$PARTS" "$RESULTS_DIR"
build_bin
if [ -z "${DATA:-}" ]; then
  DATA=synthetic
  [ -f data/cifar-10-batches-bin/data_batch_1.bin ] && DATA=cifar10
fi
echo "== $GPU_NAME (driver $DRIVER), data $DATA, parts in $PARTS" >&2

# shellcheck disable=SC2086  # the *_ARGS are word lists on purpose
want conv && part conv "$BIN" bench conv --device "${DEVICE:-cuda}" --json ${CONV_ARGS:-}
# shellcheck disable=SC2086
want gemm && part gemm "$BIN" bench gemm --device "${DEVICE:-cuda}" --json ${GEMM_ARGS:-}
if want train; then
  PEAK=""
  [ -f "$PARTS/gemm.json" ] && PEAK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peak"]["tflops"])' "$PARTS/gemm.json" 2>/dev/null || true)
  # shellcheck disable=SC2086
  part train "$BIN" bench train --device "${DEVICE:-cuda}" --data "$DATA" ${PEAK:+--peak-tflops "$PEAK"} --json ${TRAIN_ARGS:-}
fi
# shellcheck disable=SC2086
want pytorch && part pytorch python3 bench/pytorch_peer.py --data "$DATA" ${PEER_ARGS:-}

if want tta; then
  [ "$DATA" = cifar10 ] || { echo "error: --tta needs CIFAR-10 in data/cifar-10-batches-bin (scripts/fetch_data.sh)" >&2; exit 1; }
  E=${TTA_EPOCHS:-30} B=${TTA_BATCH:-256} L=${TTA_LR:-0.2}
  echo "== tta activeip: resnet18, $E epochs one-cycle, batch $B, lr $L" >&2
  if "$BIN" train --net resnet18 --data cifar10 --device cuda --epochs "$E" --batch "$B" --lr "$L" --momentum 0.9 \
       --nesterov --wd 5e-4 --schedule onecycle --seed 1 --out "$PARTS/tta-resnet18.safetensors" \
       --log "$PARTS/tta_activeip.jsonl" 2>"$PARTS/tta_activeip.log"; then :; else
    echo "!! tta activeip failed, see $PARTS/tta_activeip.log" >&2; FAILED="$FAILED tta_activeip"
  fi
  part tta_pytorch python3 bench/pytorch_peer.py --time-to-accuracy --epochs "$E" --batch "$B" --lr "$L" \
    --target "${TTA_TARGET:-0.92}"
fi

# Merge every part into one results file.
RESULT="$RESULTS_DIR/$STEM.json"
python3 - "$PARTS" "$RESULT" "$GPU_NAME" "$DRIVER" "$DATE" "${TTA_TARGET:-0.92}" <<'EOF'
import json, os, subprocess, sys
parts, out, gpu, driver, date, target = sys.argv[1:7]
target = float(target)

def load(name):
    path = os.path.join(parts, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)

try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
res = {"format": "activeip-bench-results-v1", "date": date, "commit": commit or None,
       "source": out, "gpu": gpu}
for name in ("conv", "gemm", "train", "pytorch"):
    part = load(name)
    if part is not None:
        res[name] = part
machine = next((res[k]["machine"] for k in ("conv", "gemm", "train") if k in res), {"gpu": gpu})
machine["driver_version"] = driver
res["machine"] = machine

tta = {}
log = os.path.join(parts, "tta_activeip.jsonl")
if os.path.exists(log):
    elapsed, best, reached, epochs, cfg = 0.0, 0.0, None, [], None
    for line in open(log):
        rec = json.loads(line)
        if rec.get("event") != "epoch":
            cfg = rec.get("config", cfg)
            continue
        elapsed += rec["seconds"]
        best = max(best, rec["test_accuracy"])
        epochs.append({"epoch": rec["epoch"], "test_accuracy": rec["test_accuracy"], "seconds": elapsed})
        if reached is None and rec["test_accuracy"] >= target:
            reached = (rec["epoch"], elapsed)
    tta["activeip"] = {"config": "custom kernels, fp32", "target": target, "reached": reached is not None,
                       "epoch": reached and reached[0], "seconds": reached and reached[1], "best_accuracy": best,
                       "epochs": epochs, "schedule": cfg}
peer = load("tta_pytorch")
if peer and "time_to_accuracy" in peer:
    tta["pytorch"] = peer["time_to_accuracy"]
if tta:
    s = (tta.get("pytorch") or {}).get("schedule") or {}
    tta["target"] = target
    tta["schedule"] = "one-cycle, %s epochs, batch %s, peak lr %s, SGD momentum 0.9 Nesterov, wd 5e-4" % (
        s.get("epochs", "?"), s.get("batch", "?"), s.get("lr", "?"))
    res["time_to_accuracy"] = tta
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")
os.replace(tmp, out)
print("wrote " + out, file=sys.stderr)
EOF

if [ $RENDER -eq 1 ]; then
  python3 bench/render.py "$RESULT" --out "$DOC" --plots-dir "$(dirname "$DOC")/benchmarks"
fi
if [ -n "$FAILED" ]; then
  echo "!! failed parts:$FAILED" >&2
  exit 1
fi
echo "== done: $RESULT, $DOC" >&2
