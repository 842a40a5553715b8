"""How much the test numbers move with the training seed: every seed's value, the mean and the sample sd.

    python -m model.spread runs/seeds cnn_seed gcnn_c8_pose     # what scripts/seed_variation.sh prints

For each model it reads the shipped card (``weights/<model>.json``, seed 0; ``--weights`` names another
folder, e.g. ``runs/final`` for the mixed-data runs of ``scripts/train_mixed.sh``) and
every ``<runs>/<model>_seed<N>.json`` that ``scripts/seed_variation.sh`` trained
with the same command. Upright and rotated accuracy come from the cards (the
training CLI evaluates the last checkpoint on the full test set); for a model
with a joint head so do the orientation measures of
:func:`model.evaluate.evaluate_orientation` (``metrics["orientation"]``).
Nothing here selects anything: the runs only measure spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

__all__ = ["MEASURES", "main", "spread", "spread_line"]

# (key in the metrics, label, scale): accuracies and shares in percent
MEASURES = [
    ("upright_accuracy", "upright", 100.0),
    ("rotated_accuracy", "rotated", 100.0),
    ("upright_accuracy_prior_upright", "upright, prior upright", 100.0),
    ("rotated_orientation_median_error", "orientation median error (deg)", 1.0),
    ("rotated_orientation_within_22_5", "orientation within 22.5 deg", 100.0),
]


def spread(runs: Path, name: str, weights: Path = Path("weights")) -> dict[str, Any]:
    """Per seed, the measures of ``name``; and per measure, ``(values, mean, sd)`` (sd None for one seed)."""
    paths = [weights / f"{name}.json", *sorted(runs.glob(f"{name}_seed*[0-9].json"))]
    seeds: dict[int, dict[str, Any]] = {}
    for path in (p for p in paths if p.is_file()):
        card = json.loads(path.read_text())
        metrics = dict(card["metrics"])
        if "orientation" in metrics:
            metrics.update(metrics.pop("orientation"))
            metrics["six_nine_flagged"] = (metrics["six_nine_mistakes_flagged"], metrics["six_nine_mistakes"])
        seeds[card["training"]["seed"]] = metrics
    summary: dict[str, Any] = {"seeds": sorted(seeds)}
    for key, _, scale in MEASURES:
        values = [scale * seeds[s][key] for s in sorted(seeds) if key in seeds[s]]
        if values:
            sd = statistics.stdev(values) if len(values) > 1 else None
            summary[key] = (values, statistics.mean(values), sd)
    flagged = [seeds[s]["six_nine_flagged"] for s in sorted(seeds) if "six_nine_flagged" in seeds[s]]
    if flagged:
        summary["six_nine_flagged"] = flagged
    return summary


def spread_line(label: str, values: list[float], mean: float, sd: float | None) -> str:
    """One measure's line as :func:`main` prints it: the label, every seed's value, the mean and the sd."""
    shown = " ".join(f"{v:.2f}" for v in values)
    return f"  {label:32s} {shown:24s} mean {mean:.2f}" + (f" sd {sd:.2f}" if sd is not None else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="folder of the seed runs (scripts/seed_variation.sh: runs/seeds)")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="folder of the seed-0 cards")
    args = parser.parse_args(argv)
    for name in args.models:
        summary = spread(args.runs, name, args.weights)
        print(f"{name}: seeds {summary['seeds']}")
        for key, label, _ in MEASURES:
            if key in summary:
                print(spread_line(label, *summary[key]))
        if "six_nine_flagged" in summary:
            pairs = summary["six_nine_flagged"]
            shown = " ".join(f"{f}/{m}" for f, m in pairs)
            total = f"{sum(f for f, _ in pairs)}/{sum(m for _, m in pairs)}"
            print(f"  {'rotated 6/9 mistakes flagged':32s} {shown:24s} in all {total}")


if __name__ == "__main__":
    main()
