#!/bin/sh
# The main job, end to end on the generated `synthetic` dataset (no files needed):
# build, train a small convnet, evaluate the checkpoint, print what it holds.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)" --target activeip
ACTIVEIP="$BUILD_DIR/cli/activeip"
MODEL="$BUILD_DIR/demo/convnet-synthetic.safetensors"
mkdir -p "$BUILD_DIR/demo"
"$ACTIVEIP" train --net convnet --data synthetic --epochs 3 --batch 64 --lr 0.05 --seed 1 \
  --out "$MODEL" --log "$BUILD_DIR/demo/train.jsonl"
"$ACTIVEIP" eval --model "$MODEL" --data synthetic
"$ACTIVEIP" info --model "$MODEL"
