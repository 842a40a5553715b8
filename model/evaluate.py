"""Rotated-MNIST evaluation: upright, randomly rotated and per-angle accuracy.

Protocol (fixed, so numbers compare across models and with the literature):
test digit ``i`` is rotated counter-clockwise by ``theta_i`` degrees about the
image centre, ``theta = numpy.random.default_rng(seed).uniform(0, 360, 10000)``
(seed 0 by default), bilinear, zero fill, 28x28 output -- through
:func:`model.rotation.rotate_bilinear`, the function the service uses too.

    python -m model.evaluate weights/cnn_seed.json weights/gcnn_c8.json \
        --out weights/evaluation.json --plot weights/accuracy_vs_angle.png
    python -m model.evaluate weights/gcnn_c8_canon_pose.json --out weights/evaluation.json --add  # one more model
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.networks import GroupEquivariantCNN
from model.orientation import AMBIGUITY_SHARE, UPRIGHT_CONCENTRATION, Pose, angles, upright_prior
from model.rotation import rotate_bilinear

__all__ = ["accuracy", "evaluate", "evaluate_orientation", "predict", "rotated_test_set"]

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


# Digits that look alike under a half turn: their orientation is scored modulo 180 degrees.
HALF_TURN_SYMMETRIC = (0, 1, 8)


@torch.inference_mode()
def poses(model: GroupEquivariantCNN, images: torch.Tensor, batch_size: int = 500, device: str = "cpu") -> Pose:
    """The joint (digit, angle) distribution of every image, batched."""
    model.eval()
    parts = [model.forward_pose(chunk.to(device)) for chunk in images.split(batch_size)]
    return Pose(parts[0].group, torch.cat([part.log_joint.cpu() for part in parts]))


def orientation_errors(estimated: torch.Tensor, true: np.ndarray, labels: torch.Tensor) -> np.ndarray:
    """``|estimated - true|`` in degrees, modulo 360 (modulo 180 for the digits 0, 1 and 8)."""
    difference = estimated.numpy() - true
    full = np.abs((difference + 180.0) % 360.0 - 180.0)
    half = np.abs((difference + 90.0) % 180.0 - 90.0)
    return np.where(np.isin(labels.numpy(), HALF_TURN_SYMMETRIC), half, full)


def evaluate_orientation(
    model: GroupEquivariantCNN, images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0, device: str = "cpu"
) -> dict[str, Any]:
    """What the joint head adds: accuracy with each orientation prior, orientation error, ambiguity flags.

    Same protocol as :func:`evaluate` (each test digit turned by its own angle from ``seed``).
    """
    rotated, angles_true = rotated_test_set(images, seed)
    prior = upright_prior(angles())
    report: dict[str, Any] = {"ambiguity_share": AMBIGUITY_SHARE, "upright_prior_concentration": UPRIGHT_CONCENTRATION}
    for split, inputs, truth in (("upright", images, np.zeros(len(images))), ("rotated", rotated, angles_true)):
        pose = poses(model, inputs, device=device)
        for name, weighted in (("none", pose), ("upright", pose.with_prior(prior))):
            report[f"{split}_accuracy_prior_{name}"] = accuracy(weighted.orientation().digits, labels)
        found = pose.orientation()
        errors = orientation_errors(found.degrees, truth, labels)
        report[f"{split}_orientation_median_error"] = float(np.median(errors))
        report[f"{split}_orientation_within_22_5"] = float(np.mean(errors <= 22.5))
        if split == "rotated":
            report.update(_rotated_details(pose, found.digits, errors, truth, labels))
    return report


def _rotated_details(
    pose: Pose, digits: torch.Tensor, errors: np.ndarray, truth: np.ndarray, labels: torch.Tensor
) -> dict[str, Any]:
    """Orientation error per digit and per angle, and how the ambiguity flag covers the 6/9 mistakes."""
    ambiguous = pose.top_readings(2).ambiguous().numpy()
    six_nine = (((labels == 6) & (digits == 9)) | ((labels == 9) & (digits == 6))).numpy()
    bins = (truth // ANGLE_STEP).astype(int)
    return {
        "orientation_median_error_by_digit": {str(d): float(np.median(errors[labels.numpy() == d])) for d in range(10)},
        "orientation_median_error_by_angle": {
            str(b * ANGLE_STEP): float(np.median(errors[bins == b])) for b in range(360 // ANGLE_STEP)
        },
        "orientation_within_22_5_by_angle": {
            str(b * ANGLE_STEP): float(np.mean(errors[bins == b] <= 22.5)) for b in range(360 // ANGLE_STEP)
        },
        "ambiguous_flagged": int(ambiguous.sum()),
        "ambiguous_flagged_correct": int((ambiguous & (digits == labels).numpy()).sum()),
        "six_nine_mistakes": int(six_nine.sum()),
        "six_nine_mistakes_flagged": int((six_nine & ambiguous).sum()),
    }


def plot_orientation(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Median orientation error and the share within 22.5 degrees against the angle of the turn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    legend_rows = math.ceil(len(reports) / 2)  # the legend goes under both panels, two models a row
    legend_height = 0.2 * legend_rows + 0.15
    figure, (median_axes, share_axes) = plt.subplots(1, 2, figsize=(10, 4 + legend_height))
    for (name, report), colour in zip(reports.items(), curve_colours(len(reports)), strict=True):
        by_angle = report["orientation_median_error_by_angle"]
        centres = [int(a) + ANGLE_STEP / 2 for a in by_angle]
        label = (
            f"{name}: median {report['rotated_orientation_median_error']:.1f}°, "
            f"{100 * report['rotated_orientation_within_22_5']:.1f}% within 22.5°"
        )
        median_axes.plot(centres, list(by_angle.values()), marker="o", markersize=3, label=label, color=colour)
        share = report["orientation_within_22_5_by_angle"]
        share_axes.plot(centres, [100 * v for v in share.values()], marker="o", markersize=3, color=colour)
    median_axes.set(xlabel="true rotation (degrees)", ylabel="median orientation error (degrees)", ylim=(0, None))
    share_axes.set(xlabel="true rotation (degrees)", ylabel="within 22.5 degrees (%)", ylim=(0, 100))
    for axes in (median_axes, share_axes):
        axes.set_xticks(range(0, 361, 45))
        axes.grid(alpha=0.3)
    figure.legend(*median_axes.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle("Orientation of the rotated MNIST test set (10,000 digits, each at its own angle)")
    figure.tight_layout(rect=(0, legend_height / (4 + legend_height), 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def orientation_table(reports: dict[str, dict[str, Any]]) -> str:
    """The README's orientation table."""
    header = (
        "| model | upright, prior none / upright | rotated, prior none / upright | orientation error, median "
        "| within 22.5° | 6/9 mistakes flagged ambiguous | flagged in all |"
    )
    rows = [header, "|---|---|---|---|---|---|---|"]
    for name, r in reports.items():
        percent = {key: f"{100 * value:.2f}%" for key, value in r.items() if key.endswith(("_none", "_upright"))}
        rows.append(
            f"| {name} | {percent['upright_accuracy_prior_none']} / {percent['upright_accuracy_prior_upright']} "
            f"| {percent['rotated_accuracy_prior_none']} / {percent['rotated_accuracy_prior_upright']} "
            f"| {r['rotated_orientation_median_error']:.1f}° | {100 * r['rotated_orientation_within_22_5']:.1f}% "
            f"| {r['six_nine_mistakes_flagged']} of {r['six_nine_mistakes']} | {r['ambiguous_flagged']} |"
        )
    return "\n".join(rows)


def curve_colours(count: int) -> list[Any]:
    """One colour per curve, no two alike up to twenty: matplotlib's default ten, or tab20's twenty past ten."""
    import matplotlib

    default = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    if count <= len(default):
        return default[:count]
    tab20 = matplotlib.colormaps["tab20"]  # twenty listed colours, read by index
    return [tab20(i % tab20.N) for i in range(count)]


def plot(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy vs rotation angle, one curve per model, headline numbers in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for (name, report), colour in zip(reports.items(), curve_colours(len(reports)), strict=True):
        by_angle = report["accuracy_by_angle"]
        angles = [int(a) for a in by_angle] + [360]
        values = [100 * v for v in by_angle.values()] + [100 * by_angle["0"]]
        label = (
            f"{name}: upright {100 * report['upright_accuracy']:.2f}%, rotated {100 * report['rotated_accuracy']:.2f}%"
        )
        axes.plot(angles, values, marker="o", markersize=3, label=label, color=colour)
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


def kept_reports(path: Path, *, seed: int, test_digits: int) -> dict[str, dict[str, Any]]:
    """The reports already in ``path`` (none if it does not exist), refused unless they were made by the same
    protocol: the same rotation seed and the same number of test digits. A model evaluated again under the same
    name replaces its report."""
    if not path.exists():
        return {}
    reports: dict[str, dict[str, Any]] = json.loads(path.read_text())
    for name, report in reports.items():
        made = report.get("rotation_seed"), report.get("test_digits")
        if made != (seed, test_digits):
            raise SystemExit(
                f"{path}: {name} was evaluated with rotation seed {made[0]} on {made[1]} digits, not seed {seed} "
                f"on {test_digits}: evaluate it again instead"
            )
    return reports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", nargs="+", type=Path, help="checkpoint JSON cards (weights/<name>.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test angles")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--limit", type=int, default=None, help="first N test digits only (quick checks)")
    parser.add_argument("--out", type=Path, default=Path("weights/evaluation.json"))
    parser.add_argument("--plot", type=Path, default=None, help="default: accuracy_vs_angle.png beside --out")
    parser.add_argument(
        "--orientation-plot",
        type=Path,
        default=None,
        help="orientation error against angle, for the models with a joint head; default: orientation_error.png "
        "beside --out",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="keep the reports of other models already in --out (made with the same seed and test digits) and "
        "draw the plots from all: a new model is evaluated without evaluating the others again (one of the same "
        "name is replaced)",
    )
    args = parser.parse_args(argv)
    # the figures go where the numbers go: an evaluation of a run's card never overwrites the shipped ones
    args.plot = args.plot or args.out.parent / "accuracy_vs_angle.png"
    args.orientation_plot = args.orientation_plot or args.out.parent / "orientation_error.png"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    images, labels = load_mnist(train=False, root=args.data_dir)
    images, labels = images[: args.limit], labels[: args.limit]
    reports = kept_reports(args.out, seed=args.seed, test_digits=len(labels)) if args.add else {}
    for card_path in args.cards:
        model, card = load_checkpoint(card_path, device=args.device)
        report = evaluate(model, images, labels, seed=args.seed, device=args.device)
        if isinstance(model, GroupEquivariantCNN) and model.config.head == "joint":
            report["orientation"] = evaluate_orientation(model, images, labels, seed=args.seed, device=args.device)
        reports[card["name"]] = report
        upright, rotated = 100 * report["upright_accuracy"], 100 * report["rotated_accuracy"]
        logger.info("%s: upright %.2f%%, rotated %.2f%%", card["name"], upright, rotated)
    orientations = {name: report["orientation"] for name, report in reports.items() if "orientation" in report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=2) + "\n")
    plot(reports, args.plot)
    logger.info("wrote %s and %s\n%s", args.out, args.plot, markdown_table(reports))
    if orientations:
        plot_orientation(orientations, args.orientation_plot)
        logger.info("wrote %s\n%s", args.orientation_plot, orientation_table(orientations))


if __name__ == "__main__":
    main()
