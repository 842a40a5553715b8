#!/usr/bin/env bash
# The served pair on MNIST plus synthetic upright font digits (issue 18), and its evaluation.
#
#   GCNN_DATA_DIR=../shared/data bash scripts/train_mixed.sh
#
# 1. Generates the synthetic set (bench.training_set, seed 0, 30,000 digits) unless it exists.
# 2. Fine-tunes the shipped cnn_seed and gcnn_c8_pose for EPOCHS epochs on the 60,000 MNIST training digits
#    plus the synthetic set (peak lr 1e-3, seed 0; the cards record the data and the starting checkpoint),
#    both at once, one thread each.
# 3. Puts both pairs side by side through the real service on the acceptance set (bench.acceptance).
set -euo pipefail
EPOCHS=${EPOCHS:-3}
OUT_DIR=${OUT_DIR:-runs/mixed}
SYNTHETIC=${SYNTHETIC:-data/synthetic_digits.safetensors}
PYTHON=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT_DIR/logs"
[ -f "$SYNTHETIC" ] || $PYTHON -m bench.training_set --out "$SYNTHETIC" --count 30000 --seed 0
common=(--synthetic "$SYNTHETIC" --epochs "$EPOCHS" --lr 1e-3 --seed 0 --threads 1 --out-dir "$OUT_DIR")
$PYTHON -m model.train --model cnn_seed --init weights/cnn_seed.json --name cnn_mixed "${common[@]}" \
  >"$OUT_DIR/logs/cnn_mixed.log" 2>&1 &
$PYTHON -m model.train --model gcnn_c8_pose --init weights/gcnn_c8_pose.json --name gcnn_c8_pose_mixed "${common[@]}" \
  >"$OUT_DIR/logs/gcnn_c8_pose_mixed.log" 2>&1 &
wait
cp weights/cnn_seed.json weights/cnn_seed.safetensors weights/gcnn_c8_pose.json weights/gcnn_c8_pose.safetensors "$OUT_DIR/"
GCNN_WEIGHTS_DIR="$OUT_DIR" GCNN_MODELS=cnn_seed,gcnn_c8_pose,cnn_mixed,gcnn_c8_pose_mixed \
  $PYTHON -m bench.acceptance --json "$OUT_DIR/acceptance.json"
