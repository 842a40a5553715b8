#!/usr/bin/env bash
# How much do the headline numbers move with the training seed?
#
#   GCNN_DATA_DIR=data SEEDS="1 2" MODELS="gcnn_c8_pose gcnn_c8_wide" bash scripts/seed_variation.sh
#   GCNN_DATA_DIR=data SEEDS="1 2" MODELS=gcnn_c8_blur_pose SYNTHETIC=data/synthetic_digits.safetensors \
#       WEIGHTS_DIR=runs/final RUNS_DIR=runs/seeds_mixed PARALLEL=1 bash scripts/seed_variation.sh
#
# Trains each model once per seed (same command and budget as the shipped
# weights, which used seed 0) into $RUNS_DIR, then prints, per model, the test
# accuracy of every run (the shipped seed-0 card from weights/ included), for a
# joint-head model also its orientation measures, and the mean and sample
# standard deviation (python -m model.spread). Nothing is selected from these runs:
# they only measure spread. PARALLEL=1 starts every run at once (a GPU, or one thread per core);
# the default runs them one after the other (a CPU: two runs would share its cores).
# SYNTHETIC=<file of python -m bench.training_set> trains on MNIST plus that set, as scripts/train_mixed.sh
# does: the runs are named <model>_mixed_seed<N>, their seed-0 card is read from WEIGHTS_DIR, and the
# script then also reads every seed, the seed-0 run included, through the real service on the acceptance set
# (python -m bench.acceptance, $RUNS_DIR/acceptance.txt).
set -euo pipefail
SEEDS=${SEEDS:-"1 2"}
MODELS=${MODELS:-"cnn_seed gcnn_c4_seed gcnn_c8_wide gcnn_c8_pose"}
EPOCHS=${EPOCHS:-10}
RUNS_DIR=${RUNS_DIR:-runs/seeds}
PYTHON=${PYTHON:-python}
PARALLEL=${PARALLEL:-0}
SYNTHETIC=${SYNTHETIC:-}
WEIGHTS_DIR=${WEIGHTS_DIR:-weights}
mkdir -p "$RUNS_DIR"
data=()
suffix=""
if [ -n "$SYNTHETIC" ]; then
  data=(--synthetic "$SYNTHETIC")
  suffix=_mixed
fi
names=()
for name in $MODELS; do names+=("$name$suffix"); done
pids=()
for seed in $SEEDS; do
  for name in $MODELS; do
    run="$name${suffix}_seed$seed"
    [ -f "$RUNS_DIR/$run.json" ] && continue  # done in an earlier call
    command=($PYTHON -m model.train --model "$name" "${data[@]}" --epochs "$EPOCHS" --seed "$seed" --name "$run" --out-dir "$RUNS_DIR")
    if [ "$PARALLEL" = 1 ]; then
      OMP_NUM_THREADS=1 "${command[@]}" --threads 1 >"$RUNS_DIR/$run.log" 2>&1 &
      pids+=($!)
    else
      "${command[@]}" >"$RUNS_DIR/$run.log" 2>&1
    fi
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
$PYTHON -m model.spread "$RUNS_DIR" "${names[@]}" --weights "$WEIGHTS_DIR" | tee "$RUNS_DIR/spread.txt"
if [ -n "$SYNTHETIC" ]; then
  served=()
  for name in "${names[@]}"; do
    cp "$WEIGHTS_DIR/$name.json" "$WEIGHTS_DIR/$name.safetensors" "$RUNS_DIR/"
    served+=("$name")
    for seed in $SEEDS; do served+=("${name}_seed$seed"); done
  done
  GCNN_WEIGHTS_DIR="$RUNS_DIR" GCNN_MODELS="$(IFS=,; echo "${served[*]}")" \
    $PYTHON -m bench.acceptance --json "$RUNS_DIR/acceptance.json" | tee "$RUNS_DIR/acceptance.txt"
fi
