#!/usr/bin/env bash
# Short held-out probes of the equivariance candidates (issue: equivariant at every angle), then their table.
#
#   GCNN_DATA_DIR=../shared/data SEED=0 EPOCHS=2 LIMIT=30000 CANDIDATES="gcnn_c8_wide gcnn_c8_blur gcnn_c8_fine" \
#       OUT_DIR=runs/eq19b bash scripts/equivariance_probe.sh
#
# Each candidate trains on the first LIMIT training digits for EPOCHS epochs (one thread each, all at once) and is
# scored on the last 10,000 training digits, which it never saw; the test set is not touched. bench.candidates
# then prints the table, with the first candidate read with the two-copy orbit average as the baseline to beat.
set -euo pipefail
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-30000}
CANDIDATES=${CANDIDATES:-"gcnn_c8_wide gcnn_c8_blur gcnn_c8_fine"}
OUT_DIR=${OUT_DIR:-runs/equivariance_probe}
PYTHON=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT_DIR/logs"
for name in $CANDIDATES; do
  $PYTHON -m model.train --model "$name" --epochs "$EPOCHS" --limit "$LIMIT" --val-split 10000 --skip-test --seed "$SEED" \
    --threads 1 --out-dir "$OUT_DIR" >"$OUT_DIR/logs/$name.log" 2>&1 &
done
wait
cards=()
for name in $CANDIDATES; do cards+=("$OUT_DIR/$name.json"); done
$PYTHON -m bench.candidates "${cards[@]}" --baseline "${cards[0]}" | tee "$OUT_DIR/candidates.md"
