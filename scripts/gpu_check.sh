#!/bin/bash
# The checks that need a GPU, in one go: the GPU test suite, compute-sanitizer memcheck and
# racecheck on it, the PyTorch cross-check of resnet20/resnet18/vgg16 logits, and the
# training throughput of custom kernels against cuDNN/cuBLAS on `synthetic`.
#   scripts/gpu_check.sh [BUILD_DIR [LOG_DIR]]     (defaults: build, runs/gpu-check)
# BUILD_DIR must hold a CUDA build (activeip and tests/activeip_gpu_tests). Logs go to
# LOG_DIR; a summary table is printed last. Exit status 1 if any check failed.
# CHECKS picks sections (default: suite memcheck racecheck crosscheck protect throughput);
# SANITIZER_TIMEOUT (s), RACECHECK_TESTS (doctest filter) and THROUGHPUT_NETS narrow them.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
LOGS=${2:-runs/gpu-check}
mkdir -p "$LOGS"
CLI="$BUILD/cli/activeip"
TESTS="$BUILD/tests/activeip_gpu_tests"
PY=${PYTHON:-python3}
declare -a ROWS
failed=0
CHECKS=${CHECKS:-suite memcheck racecheck crosscheck protect throughput}
want() { [[ " $CHECKS " == *" $1 "* ]]; }
row() {  # row CHECK RESULT DETAIL
  ROWS+=("$(printf '%-34s %-8s %s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && failed=1
  return 0
}

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nvcc --version 2>/dev/null | tail -1 || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())' 2>/dev/null || true

if want suite; then
echo "== GPU test suite"
if timeout 150 "$TESTS" --duration=true >"$LOGS/gpu_tests.log" 2>&1; then r=PASS; else r=FAIL; fi
row "GPU test suite" "$r" "$(grep -E '^\[doctest\] (test cases|assertions)' "$LOGS/gpu_tests.log" | tr -s ' ' | tr '\n' ' ')"
tail -n 40 "$LOGS/gpu_tests.log"
fi

# The whole-network cases are slow under the sanitizers and add no kernel the op tests miss.
# racecheck only matters where threads share memory: the tiled and reducing kernels.
SLOW='*whole training step*,*follows the CPU*,*2^31*'
SHARED=${RACECHECK_TESTS:-ops on*conv2d*,ops on*linear*,ops on*batchnorm*,ops on*softmax*,ops on*distillation*,conv2d*,gemm*,linear*,batchnorm*,softmax*}
for tool in memcheck racecheck; do
  want "$tool" || continue
  echo "== compute-sanitizer $tool"
  filter=(--test-case-exclude="$SLOW")
  [ "$tool" = racecheck ] && filter+=(--test-case="$SHARED")
  if timeout "${SANITIZER_TIMEOUT:-240}" compute-sanitizer --tool "$tool" --error-exitcode 99 "$TESTS" "${filter[@]}" \
    >"$LOGS/sanitizer_$tool.log" 2>&1; then r=PASS; else r=FAIL; fi
  row "compute-sanitizer $tool" "$r" "$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/sanitizer_$tool.log" | tail -1)"
  tail -n 15 "$LOGS/sanitizer_$tool.log"
done

want crosscheck && echo "== PyTorch cross-check"
want crosscheck && for net in resnet20 resnet18 vgg16; do
  m="$LOGS/$net.safetensors"
  rm -f "$m" "${m%.safetensors}.optim.safetensors" "$LOGS/$net.logits.safetensors"
  if "$CLI" train --net "$net" --data synthetic --limit-train 2048 --limit-test 256 --epochs 1 --batch 128 \
       --lr 0.01 --device cuda --out "$m" >"$LOGS/crosscheck_$net.log" 2>&1 &&
     "$CLI" eval --model "$m" --data synthetic --limit-test 256 --device cuda --logits "$LOGS/$net.logits.safetensors" \
       >>"$LOGS/crosscheck_$net.log" 2>&1 &&
     "$PY" scripts/torch_crosscheck.py --model "$m" --logits "$LOGS/$net.logits.safetensors" \
       >>"$LOGS/crosscheck_$net.log" 2>&1; then r=PASS; else r=FAIL; fi
  row "cross-check $net" "$r" "$(tail -n 1 "$LOGS/crosscheck_$net.log")"
done

if want protect; then
echo "== protected training and probing on CUDA (synthetic, 5 users)"
P="$LOGS/protect"
rm -rf "$P" && mkdir -p "$P"
USERS="alice bob carol dave erin"
MODEL="--model $P/protected.safetensors --key $P/owner.key --data synthetic --device cuda"
# shellcheck disable=SC2086
if "$CLI" key new --out "$P/owner.key" >"$P/log" 2>&1 &&
   "$CLI" users add --registry "$P/users.db" $USERS >>"$P/log" 2>&1 &&
   "$CLI" train --net convnet --data synthetic --epochs 20 --batch 64 --lr 0.1 --schedule onecycle --seed 1 \
     --device cuda --out "$P/protected.safetensors" --protect --key "$P/owner.key" --registry "$P/users.db" \
     --poison-rate 0.3 --forged-rate 0.1 >>"$P/log" 2>&1; then
  ok=0
  for user in $USERS; do
    "$CLI" auth $MODEL --registry "$P/users.db" --user "$user" --json >>"$P/auth.jsonl" 2>>"$P/log" || ok=1
  done
  row "auth 5 users on CUDA" "$([ $ok = 0 ] && echo PASS || echo FAIL)" \
    "detection $(grep -o '"detection_rate":[0-9.e-]*' "$P/auth.jsonl" | cut -d: -f2 | tr '\n' ' ')"
  "$CLI" forge $MODEL --registry "$P/users.db" --count 200 --json >"$P/forge.json" 2>>"$P/log"
  row "forge 200 on CUDA" "$(grep -q '"passed":0[,}]' "$P/forge.json" && echo PASS || echo FAIL)" \
    "$(head -c 160 "$P/forge.json")"
  if "$CLI" verify $MODEL --json >"$P/verify.json" 2>>"$P/log"; then r=PASS; else r=FAIL; fi
  row "verify owner on CUDA" "$r" "$(head -c 160 "$P/verify.json")"
else
  row "protected training on CUDA" FAIL "$(tail -n 1 "$P/log")"
fi
fi

want throughput && echo "== training throughput (synthetic, 2 epochs; the second is timed)"
want throughput && for net in ${THROUGHPUT_NETS:-resnet18 vgg16 resnet20}; do
  for impl in custom cudnn; do
    gemm=custom; [ "$impl" = cudnn ] && gemm=cublas
    log="$LOGS/throughput_${net}_$impl.jsonl"
    rm -f "$log" "$LOGS/tp.safetensors" "$LOGS/tp.optim.safetensors"
    if "$CLI" train --net "$net" --data synthetic --limit-train 6400 --limit-test 256 --epochs 2 --batch 256 --lr 0.02 \
         --device cuda --conv-impl "$impl" --gemm-impl "$gemm" --out "$LOGS/tp.safetensors" --log "$log" \
         >"$LOGS/throughput_${net}_$impl.out" 2>&1; then
      ips=$("$PY" -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])["images_per_s"]))' "$log")
      row "train $net b256 $impl" "PASS" "$ips images/s"
    else
      row "train $net b256 $impl" "FAIL" "$(tail -n 1 "$LOGS/throughput_${net}_$impl.out")"
    fi
  done
done

echo
echo "== summary"
for r in "${ROWS[@]}"; do echo "$r"; done
exit $failed
