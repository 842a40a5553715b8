#!/usr/bin/env bash
# Model selection on held-out training digits, then training of the shipped weights.
#
#   GCNN_DATA_DIR=../shared/data bash scripts/select_and_train.sh
#
# 1. Every candidate G-CNN is trained on the first 50,000 training digits and
#    scored on the last 10,000, each rotated by a random angle. The test set is
#    not touched, so choosing the best candidate is no selection on test data.
# 2. At the same time the two fixed seed models (cnn_seed, gcnn_c4_seed) are
#    trained on all 60,000 digits.
# 3. The candidate with the best validation rotated accuracy is trained on all
#    60,000 digits with the same epochs and optimiser budget as the seed models.
# 4. All shipped checkpoints are evaluated on the full test set (report + plot).
# Runs on CUDA when available (several trainings share the GPU), else on the CPU.
set -euo pipefail
EPOCHS=${EPOCHS:-10}
SELECTION_EPOCHS=${SELECTION_EPOCHS:-6}
OUT_DIR=${OUT_DIR:-weights}
RUNS_DIR=${RUNS_DIR:-runs}
CANDIDATES=${CANDIDATES:-"gcnn_c4 gcnn_c8_grid gcnn_c8 gcnn_c8_wide gcnn_c8_hires gcnn_c16 gcnn_c16_wide"}
EXTRA_ARGS=${EXTRA_ARGS:-}  # e.g. "--limit 512 --eval-limit 500" for a dry run
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS_DIR/selection" "$RUNS_DIR/logs" "$OUT_DIR"

pids=()
for name in $CANDIDATES; do
  $PYTHON -m model.train --model "$name" --epochs "$SELECTION_EPOCHS" --val-split 10000 --skip-test \
    --out-dir "$RUNS_DIR/selection" $EXTRA_ARGS >"$RUNS_DIR/logs/select_$name.log" 2>&1 &
  pids+=($!)
done
for name in cnn_seed gcnn_c4_seed; do
  $PYTHON -m model.train --model "$name" --epochs "$EPOCHS" --out-dir "$OUT_DIR" $EXTRA_ARGS \
    >"$RUNS_DIR/logs/train_$name.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

best=$($PYTHON - "$RUNS_DIR/selection" <<'PY'
import json, pathlib, sys
cards = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.json")]
for card in sorted(cards, key=lambda c: -c["metrics"]["validation"]["rotated_accuracy"]):
    v = card["metrics"]["validation"]
    print(f"{card['name']:16s} params {card['parameters']:7d}  val upright {100*v['upright_accuracy']:.2f}  "
          f"val rotated {100*v['rotated_accuracy']:.2f}  train {card['training']['wall_time_s']} s", file=sys.stderr)
print(max(cards, key=lambda c: c["metrics"]["validation"]["rotated_accuracy"])["name"])
PY
)
echo "selected: $best"
$PYTHON -m model.train --model "$best" --epochs "$EPOCHS" --out-dir "$OUT_DIR" $EXTRA_ARGS 2>&1 | tee "$RUNS_DIR/logs/train_$best.log" | grep -v "it/s"
$PYTHON -m model.evaluate "$OUT_DIR/cnn_seed.json" "$OUT_DIR/gcnn_c4_seed.json" "$OUT_DIR/$best.json" \
  --out "$OUT_DIR/evaluation.json" --plot "$OUT_DIR/accuracy_vs_angle.png" 2>&1 | grep -v "it/s"
