#!/usr/bin/env bash
# How much do the headline numbers move with the training seed?
#
#   GCNN_DATA_DIR=data SEEDS="1 2" MODELS="gcnn_c8_pose gcnn_c8_wide" bash scripts/seed_variation.sh
#
# Trains each model once per seed (same command and budget as the shipped
# weights, which used seed 0) into $RUNS_DIR, then prints, per model, the test
# accuracy of every run (the shipped seed-0 card from weights/ included), for a
# joint-head model also its orientation measures, and the mean and sample
# standard deviation (python -m model.spread). Nothing is selected from these runs:
# they only measure spread. PARALLEL=1 starts every run at once (a GPU);
# the default runs them one after the other (a CPU: two runs would share its cores).
set -euo pipefail
SEEDS=${SEEDS:-"1 2"}
MODELS=${MODELS:-"cnn_seed gcnn_c4_seed gcnn_c8_wide gcnn_c8_pose"}
EPOCHS=${EPOCHS:-10}
RUNS_DIR=${RUNS_DIR:-runs/seeds}
PYTHON=${PYTHON:-python}
PARALLEL=${PARALLEL:-0}
mkdir -p "$RUNS_DIR"
pids=()
for seed in $SEEDS; do
  for name in $MODELS; do
    [ -f "$RUNS_DIR/${name}_seed$seed.json" ] && continue  # done in an earlier call
    command=($PYTHON -m model.train --model "$name" --epochs "$EPOCHS" --seed "$seed" --name "${name}_seed$seed" --out-dir "$RUNS_DIR")
    if [ "$PARALLEL" = 1 ]; then
      OMP_NUM_THREADS=1 "${command[@]}" >"$RUNS_DIR/${name}_seed$seed.log" 2>&1 &
      pids+=($!)
    else
      "${command[@]}" >"$RUNS_DIR/${name}_seed$seed.log" 2>&1
    fi
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
$PYTHON -m model.spread "$RUNS_DIR" $MODELS
