#!/usr/bin/env bash
# How much do the headline numbers move with the training seed?
#
#   GCNN_DATA_DIR=data SEEDS="1 2" bash scripts/seed_variation.sh
#
# Trains each model once per seed (same command and budget as the shipped
# weights, which used seed 0) into $RUNS_DIR and prints upright / rotated test
# accuracy per run. Nothing is selected from these runs: they only measure spread.
set -euo pipefail
SEEDS=${SEEDS:-"1 2"}
MODELS=${MODELS:-"cnn_seed gcnn_c4_seed gcnn_c8_wide"}
EPOCHS=${EPOCHS:-10}
RUNS_DIR=${RUNS_DIR:-runs/seeds}
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS_DIR"
pids=()
for seed in $SEEDS; do
  for name in $MODELS; do
    $PYTHON -m model.train --model "$name" --epochs "$EPOCHS" --seed "$seed" --name "${name}_seed$seed" \
      --out-dir "$RUNS_DIR" >"$RUNS_DIR/${name}_seed$seed.log" 2>&1 &
    pids+=($!)
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
$PYTHON - "$RUNS_DIR" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    card = json.loads(path.read_text())
    m = card["metrics"]
    print(f"{card['name']:24s} upright {100 * m['upright_accuracy']:.2f}%  rotated {100 * m['rotated_accuracy']:.2f}%")
PY
