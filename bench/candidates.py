"""Architecture candidates side by side: on held-out training digits to choose, on the test set once chosen.

    python -m bench.candidates runs/eq19/gcnn_c8_wide.json runs/eq19/gcnn_c8_aa.json ... \
        --baseline runs/eq19/gcnn_c8_wide.json --val-split 10000
    python -m bench.candidates weights/gcnn_c8_pose.json runs/final/gcnn_c8_blur.json ... \
        --baseline weights/gcnn_c8_pose.json --test

Choosing: each card is a model trained with ``--val-split N --skip-test`` (so the last N training digits were
never trained on) and is scored on those N. ``--test``: the models trained for good (on every training digit)
are scored on the full test set, each digit turned as the MNIST protocol turns it (:mod:`model.evaluate`),
for the final comparison table; nothing is chosen on these numbers. For each model, and for the baseline read
with the two-copy orbit average
(:class:`model.orbit_average.OrbitAverage`, input and input turned by 22.5°), it prints:

- upright and rotated accuracy on the held-out (or test) digits (each turned by its own random angle, seed 0, as
  :func:`model.evaluate.rotated_test_set` turns the test set), and how many of the mistakes are a 6 read as a 9 or a
  9 as a 6, upright / rotated (what a reader invariant to the half turn cannot tell apart by shape alone);
- the worst 15° bin: the rotated digits binned by their angle modulo 90° (a C4-exact network reads a
  digit turned by ``theta`` and by ``theta + 90°`` identically, so the six bins hold ~N/6 digits each);
- the invariance error of the log-probabilities at 45° and 22.5° on the first 200 held-out digits,
  turned cleanly (:mod:`model.equivariance`);
- parameters, FLOPs per image, batch-1 CPU latency as a ratio to the baseline (timed interleaved, in one
  process, so that the machine's load hits both alike), and the training wall time from the card.
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.timing import count_flops, time_calls
from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.equivariance import turned_cleanly
from model.evaluate import rotated_test_set
from model.orbit_average import OrbitAverage

__all__ = ["Row", "compare", "main"]

BIN_DEGREES = 15


@dataclass
class Row:
    name: str
    upright: float
    rotated: float
    swaps_upright: int  # mistakes that read a 6 as a 9 or a 9 as a 6
    swaps_rotated: int
    worst_bin: float
    worst_bin_start: int
    error_45: float
    error_22_5: float
    parameters: int
    flops: int
    latency_ratio: float
    train_seconds: float | None


@torch.inference_mode()
def log_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([F.log_softmax(model(chunk), dim=1) for chunk in images.split(batch_size)])


def invariance_error(model: nn.Module, images: torch.Tensor, degrees: float) -> float:
    """``||lp(T x) - lp(x)|| / ||lp(x)||`` of the log-probabilities, on cleanly turned inputs."""
    upright = log_probabilities(model, turned_cleanly(images, 0.0))
    turned = log_probabilities(model, turned_cleanly(images, degrees))
    return float((turned - upright).norm() / upright.norm())


def six_nine_swaps(predicted: torch.Tensor, labels: torch.Tensor) -> int:
    """How many digits labelled 6 are read as 9, and 9 as 6."""
    return int((((labels == 6) & (predicted == 9)) | ((labels == 9) & (predicted == 6))).sum())


def worst_bin(correct: np.ndarray, angles: np.ndarray) -> tuple[float, int]:
    """The lowest accuracy over the 15° bins of ``angle mod 90``, and where that bin starts."""
    bins = ((angles % 90.0) // BIN_DEGREES).astype(int)
    scores = [(float(correct[bins == b].mean()), b * BIN_DEGREES) for b in range(90 // BIN_DEGREES)]
    return min(scores)


def interleaved_latency_ratios(models: dict[str, nn.Module], baseline: str, rounds: int = 7) -> dict[str, float]:
    """Median batch-1 latency of each model over the baseline's, timed in alternation."""
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    calls: dict[str, Callable[[], object]] = {
        name: functools.partial(log_probabilities, model, x) for name, model in models.items()
    }
    medians: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, call in calls.items():
            medians[name].append(time_calls(call, runs=20).median)
    reference = statistics.median(medians[baseline])
    return {name: statistics.median(times) / reference for name, times in medians.items()}


def compare(
    cards: list[Path],
    baseline: Path,
    val_split: int,
    data_dir: str | None,
    limit: int | None = None,
    test: bool = False,
) -> list[Row]:
    """One row per card and one for the baseline's orbit average: on the last ``val_split`` training digits,
    or with ``test`` on the test set (``val_split`` is then ignored, and every card must have trained on every
    training digit)."""
    held_out = 0 if test else val_split  # the training digits every card must have held out
    if test:
        images, labels = load_mnist(train=False, root=data_dir)
        val_images, val_labels = images[:limit], labels[:limit]
    else:
        images, labels = load_mnist(train=True, root=data_dir)
        val_images, val_labels = images[-val_split:][:limit], labels[-val_split:][:limit]
    rotated, angles = rotated_test_set(val_images, seed=0)
    models: dict[str, nn.Module] = {}
    train_seconds: dict[str, float | None] = {}
    baseline_name = ""
    for path in cards:
        model, card = load_checkpoint(path)
        if (card["training"].get("val_split") or 0) != held_out:
            trained = card["training"].get("val_split")
            raise SystemExit(f"{path}: trained with --val-split {trained}, not {held_out or 'none (--test)'}")
        models[card["name"]] = model.eval()
        train_seconds[card["name"]] = card["training"].get("wall_time_s")
        if path.resolve() == baseline.resolve():
            baseline_name = card["name"]
    if not baseline_name:
        raise SystemExit(f"the baseline {baseline} must be one of the cards")
    orbit_name = f"{baseline_name} + orbit average (0°, 22.5°)"
    models[orbit_name] = OrbitAverage(copy.deepcopy(models[baseline_name]), (0.0, 22.5))
    train_seconds[orbit_name] = train_seconds[baseline_name]
    ratios = interleaved_latency_ratios(models, baseline_name)
    rows = []
    for name, model in models.items():
        logging.info("scoring %s", name)
        read_rotated = log_probabilities(model, rotated).argmax(1)
        read_upright = log_probabilities(model, val_images).argmax(1)
        correct = (read_rotated == val_labels).numpy()
        upright = (read_upright == val_labels).float().mean().item()
        low, start = worst_bin(correct, angles)
        probe = val_images[:200]
        x = torch.rand(1, 1, 28, 28)
        log_probabilities(model, x)  # fill the kernel caches: the FLOPs of the steady state
        rows.append(
            Row(
                name,
                upright,
                float(correct.mean()),
                six_nine_swaps(read_upright, val_labels),
                six_nine_swaps(read_rotated, val_labels),
                low,
                start,
                invariance_error(model, probe, 45.0),
                invariance_error(model, probe, 22.5),
                sum(p.numel() for p in model.parameters()),
                count_flops(functools.partial(log_probabilities, model, x)),
                ratios[name],
                train_seconds[name],
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| model | upright | rotated | 6/9 swaps (upright / rotated) | worst 15° bin (mod 90°) | log-prob error 45° "
        "| 22.5° | parameters | MFLOP/image | batch-1 latency | training |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seconds = f"{r.train_seconds:.0f} s" if r.train_seconds is not None else "-"
        lines.append(
            f"| {r.name} | {100 * r.upright:.2f}% | {100 * r.rotated:.2f}% | {r.swaps_upright} / {r.swaps_rotated} "
            f"| {100 * r.worst_bin:.2f}% "
            f"({r.worst_bin_start}-{r.worst_bin_start + BIN_DEGREES}°) | {r.error_45:.4f} | {r.error_22_5:.4f} "
            f"| {r.parameters:,} | {r.flops / 1e6:.0f} | {r.latency_ratio:.2f}x | {seconds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", nargs="+", type=Path, help="cards of models trained with --val-split")
    parser.add_argument("--baseline", type=Path, required=True, help="the card the others are compared with")
    parser.add_argument("--val-split", type=int, default=10000)
    parser.add_argument("--limit", type=int, default=None, help="score the first N held-out digits only (smoke runs)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--test", action="store_true", help="score models trained on every training digit on the test set (final table)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows = compare(args.cards, args.baseline, args.val_split, args.data_dir, args.limit, args.test)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
