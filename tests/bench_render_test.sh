#!/bin/sh
# ctest: bench/render.py on the sample results fixture (invented numbers, never measured)
# into a temporary folder: the markdown must carry the fixture warning, the headline figures
# computed from the fixture, and every section; plots are made when matplotlib is present and
# skipped with a note otherwise. Skipped (77) without python3.
set -eu
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 "$ROOT/bench/render.py" "$ROOT/tests/fixtures/bench_results_sample.json" --out "$TMP/benchmarks.md" \
  --plots-dir "$TMP/plots" >"$TMP/log" 2>&1 || { cat "$TMP/log"; exit 1; }
md="$TMP/benchmarks.md"
fail() { echo "render test: $1"; cat "$md"; exit 1; }
grep -q '^# Benchmarks' "$md" || fail "no title"
grep -q 'Test fixture: these numbers were not measured' "$md" || fail "no fixture warning"
for h in '## Headline' '## Convolutions: ours vs cuDNN' '## GEMM: ours vs cuBLAS' \
         '## Training throughput: ActiveIP vs PyTorch' '## Time to accuracy' '## Plots'; do
  grep -q "^$h\$" "$md" || fail "missing section '$h'"
done
# Headline: resnet18's geometric mean (1.00 in the fixture), ours vs PyTorch's best (5000 vs
# 10000 images/s: 0.50x) and the best MFU (6000 images/s x 3.34 GFLOP / 50 TFLOP/s = 40.1%).
grep -q 'ours takes 1.00× cuDNN' "$md" || fail "conv headline"
grep -q 'amp-bf16-cl, 10000 images/s (batch 256): 0.50× PyTorch' "$md" || fail "throughput headline"
grep -q 'best 40.1%' "$md" || fail "MFU headline"
# Best of each engine: ours (custom 5000) against PyTorch at the same precision (eager-fp32,
# 4500: 1.11x) and against its best configuration (0.50x).
grep -q '^| resnet18 | 5000 | 6000 | 4500 | 1.11 | 10000 (amp-bf16-cl) | 0.50 |$' "$md" || fail "best-of-engine row"
# Every measured layer × pass has a row; the run that failed says why.
[ "$(grep -c '^| 32x32x64 3x3 64->64 s1 | 4 |' "$md")" -eq 3 ] || fail "conv rows"
grep -q 'fixture: not run' "$md" || fail "reason of a missing run"
if python3 -c 'import matplotlib' 2>/dev/null; then
  [ -f "$TMP/plots/conv_ratio_resnet18.png" ] && [ -f "$TMP/plots/throughput_resnet18.png" ] || fail "no plots"
  grep -q 'conv_ratio_resnet18.png' "$md" || fail "plot not linked"
else
  grep -q 'Plots skipped: matplotlib is not installed' "$md" || fail "no note on skipped plots"
fi
# The CPU results render as the CPU section at the end and keep the GPU part as it was; a
# GPU render afterwards keeps the CPU section.
cp "$md" "$TMP/gpu-only.md"
python3 "$ROOT/bench/render.py" "$ROOT/tests/fixtures/bench_cpu_results_sample.json" --out "$md" >"$TMP/log" 2>&1 \
  || { cat "$TMP/log"; exit 1; }
grep -q '^## CPU: ActiveIP vs PyTorch$' "$md" || fail "no CPU section"
grep -q '^| train | 1 | resnet20 | 128 | fp32 | 300.0 | 400.0 | eager-fp32-cl | 0.75 | – | – |$' "$md" \
  || fail "CPU summary row"
grep -q 'activeip infer vgg16 t2 custom: fixture: not run' "$md" || fail "CPU run without a figure"
[ "$(grep -c '^## Headline$' "$md")" -eq 1 ] || fail "GPU part lost or doubled by the CPU render"
python3 "$ROOT/bench/render.py" "$ROOT/tests/fixtures/bench_results_sample.json" --out "$md" --no-plots >"$TMP/log" 2>&1 \
  || { cat "$TMP/log"; exit 1; }
[ "$(grep -c '^## CPU: ActiveIP vs PyTorch$' "$md")" -eq 1 ] || fail "CPU section lost or doubled by the GPU render"
python3 "$ROOT/bench/render.py" "$ROOT/tests/fixtures/bench_cpu_results_sample.json" --out "$md" >"$TMP/log" 2>&1
[ "$(grep -c '^## CPU: ActiveIP vs PyTorch$' "$md")" -eq 1 ] || fail "CPU section doubled by a second CPU render"
# bench/merge_cpu.py pairs each of ours with PyTorch's faster fp32 configuration at the same
# mode, threads and net, and ours in bf16 also with PyTorch's bf16 autocast (parts written
# here, in the shapes the two commands print).
mkdir "$TMP/parts"
echo '{"command": "train", "machine": {"cpu": "x"}, "runs": [{"batch": 8, "conv_impl": "custom", "precision": "fp32",
  "images_per_s": 30}, {"batch": 8, "conv_impl": "custom", "precision": "bf16", "images_per_s": 60}]}' \
  >"$TMP/parts/train-resnet20-t2.json"
echo '{"machine": {"pytorch": "9"}, "runs": [{"batch": 8, "config": "eager-fp32", "precision": "fp32",
  "images_per_s": 40}, {"batch": 8, "config": "eager-fp32-cl", "precision": "fp32", "images_per_s": 20},
  {"batch": 8, "config": "amp-bf16-cl", "precision": "bf16", "images_per_s": 50}]}' \
  >"$TMP/parts/peer-train-resnet20-t2.json"
python3 "$ROOT/bench/merge_cpu.py" "$TMP/parts" "$TMP/cpu.json" 2000-01-01 2>"$TMP/log" || { cat "$TMP/log"; exit 1; }
python3 - "$TMP/cpu.json" <<'PY' || fail "merge_cpu summary"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert r["format"] == "activeip-bench-cpu-results-v1" and len(r["runs"]) == 5, r
fp32, bf16 = sorted(s, key=lambda x: x["precision"] != "fp32")
assert len(s) == 2 and fp32["pytorch_config"] == "eager-fp32" and abs(fp32["ratio"] - 0.75) < 1e-12, s
assert fp32["pytorch_bf16"] is None and fp32["ratio_bf16"] is None, s
assert bf16["pytorch_config"] == "eager-fp32" and abs(bf16["ratio"] - 1.5) < 1e-12, s
assert bf16["pytorch_bf16"] == 50 and abs(bf16["ratio_bf16"] - 1.2) < 1e-12, s
PY
# A file that is not a results file is refused with exit status 1 and nothing written.
echo '{"format": "other"}' >"$TMP/bad.json"
if python3 "$ROOT/bench/render.py" "$TMP/bad.json" --out "$TMP/bad.md" 2>"$TMP/err"; then fail "accepted a bad file"; fi
grep -q '^error: ' "$TMP/err" || fail "no error message"
[ ! -e "$TMP/bad.md" ] || fail "wrote output for a bad file"
echo "render.py: ok"
