"""Rotated-MNIST evaluation: upright, randomly rotated and per-angle accuracy.

Protocol (fixed, so numbers compare across models and with the literature):
test digit ``i`` is rotated counter-clockwise by ``theta_i`` degrees about the
image centre, ``theta = numpy.random.default_rng(seed).uniform(0, 360, 10000)``
(seed 0 by default), bilinear, zero fill, 28x28 output -- through
:func:`model.rotation.rotate_bilinear`, the function the service uses too.

    python -m model.evaluate weights/cnn_seed.json weights/gcnn_c8.json \
        --out weights/evaluation.json --plot weights/accuracy_vs_angle.png
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.rotation import rotate_bilinear

__all__ = ["accuracy", "evaluate", "predict", "rotated_test_set"]

logger = logging.getLogger(__name__)
ANGLE_STEP = 15


def rotated_test_set(images: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Each image rotated by its own uniform random angle in [0, 360) degrees."""
    angles = np.random.default_rng(seed).uniform(0.0, 360.0, len(images))
    return rotate_bilinear(images, torch.from_numpy(angles)), angles


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500, device: str = "cpu") -> torch.Tensor:
    """Predicted classes ``(N,)`` in eval mode, batched."""
    model.eval()
    batches = [model(chunk.to(device)).argmax(dim=1).cpu() for chunk in images.split(batch_size)]
    return torch.cat(batches)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return (predictions == labels).float().mean().item()


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> list[list[int]]:
    """``matrix[true][predicted]`` counts."""
    counts = torch.bincount(labels * classes + predictions, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    per_angle: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Upright and rotated accuracy, confusion on the rotated set, and optionally per-angle accuracy."""
    rotated, _ = rotated_test_set(images, seed)
    rotated_predictions = predict(model, rotated, device=device)
    confusion = confusion_matrix(rotated_predictions, labels)
    report: dict[str, Any] = {
        "test_digits": len(labels),
        "rotation_seed": seed,
        "upright_accuracy": accuracy(predict(model, images, device=device), labels),
        "rotated_accuracy": accuracy(rotated_predictions, labels),
        "rotated_confusion_matrix": confusion,
        "rotated_6_as_9": confusion[6][9],
        "rotated_9_as_6": confusion[9][6],
    }
    if per_angle:
        angles = range(0, 360, ANGLE_STEP)
        report["accuracy_by_angle"] = {
            str(angle): accuracy(predict(model, rotate_bilinear(images, float(angle)), device=device), labels)
            for angle in tqdm(angles, desc="angles", leave=False)
        }
    return report


def plot(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy vs rotation angle, one curve per model, headline numbers in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, report in reports.items():
        by_angle = report["accuracy_by_angle"]
        angles = [int(a) for a in by_angle] + [360]
        values = [100 * v for v in by_angle.values()] + [100 * by_angle["0"]]
        label = (
            f"{name}: upright {100 * report['upright_accuracy']:.2f}%, rotated {100 * report['rotated_accuracy']:.2f}%"
        )
        axes.plot(angles, values, marker="o", markersize=3, label=label)
    axes.set(xlabel="rotation angle (degrees, counter-clockwise)", ylabel="test accuracy (%)", ylim=(0, 100))
    axes.set_xticks(range(0, 361, 45))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    axes.set_title("MNIST test set (10,000 digits) rotated by each angle")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown_table(reports: dict[str, dict[str, Any]]) -> str:
    """The README's results table."""
    header = "| model | upright | rotated (random angle) | worst angle | rotated 6 -> 9 / 9 -> 6 |"
    rows = [header, "|---|---|---|---|---|"]
    for name, report in reports.items():
        worst = min(report["accuracy_by_angle"].items(), key=lambda item: item[1])
        rows.append(
            f"| {name} | {100 * report['upright_accuracy']:.2f}% | {100 * report['rotated_accuracy']:.2f}% "
            f"| {100 * worst[1]:.2f}% at {worst[0]}° | {report['rotated_6_as_9']} / {report['rotated_9_as_6']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", nargs="+", type=Path, help="checkpoint JSON cards (weights/<name>.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test angles")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--limit", type=int, default=None, help="first N test digits only (quick checks)")
    parser.add_argument("--out", type=Path, default=Path("weights/evaluation.json"))
    parser.add_argument("--plot", type=Path, default=Path("weights/accuracy_vs_angle.png"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    images, labels = load_mnist(train=False, root=args.data_dir)
    images, labels = images[: args.limit], labels[: args.limit]
    reports = {}
    for card_path in args.cards:
        model, card = load_checkpoint(card_path, device=args.device)
        report = evaluate(model, images, labels, seed=args.seed, device=args.device)
        reports[card["name"]] = report
        upright, rotated = 100 * report["upright_accuracy"], 100 * report["rotated_accuracy"]
        logger.info("%s: upright %.2f%%, rotated %.2f%%", card["name"], upright, rotated)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=2) + "\n")
    plot(reports, args.plot)
    logger.info("wrote %s and %s\n%s", args.out, args.plot, markdown_table(reports))


if __name__ == "__main__":
    main()
