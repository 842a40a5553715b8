"""How well the principal axis turns with a digit, and how far it turns the training digits (model.canonical).

    python -m bench.canonical_axis [--digits 2000]

Prints, for the first N MNIST test digits each turned by its own random angle as the evaluation protocol turns
them (bilinear, the angles of ``model.evaluate``'s seed 0), how far the axis ``phi`` of the turned digit misses
``phi`` of the upright one plus the angle (modulo 180°): what canonicalising cannot undo. Then, for the first N
training digits, the turn that stands each one's axis vertical: the angles at which a canonicalising network's
convolutions see upright training digits. Last, for the first N upright test digits, how far each digit's axis
stands from the mean axis of its class (writers' slant): a turned digit whose shape shows nothing but its axis (a
plain 1) cannot be told from an upright one written with more slant, so no reader that sees only the turned digit
orients it better than that spread (docs/evaluation.md compares it with the joint head's error by digit).

    python -m bench.canonical_axis --digits 10000 --cards weights/gcnn_c8_pose.json weights/gcnn_c8_canon_pose.json

It also prints, for the first N upright test digits sorted by how far the digit's own axis turns it
(:data:`TURN_BINS`), how far the turned image as the network makes it (:func:`model.canonical.canonicalize`: 2x
bicubic up, bilinear turn, area down) lies from the same turn made at 8x: whether the interpolation grows with the
turn. With no turn the bilinear turn is the identity, so what is left there is the 2x resampling against the 8x one.

With ``--cards``, also each model's mistakes on the first N upright test digits, sorted the same way: whether a
canonicalising network's upright mistakes come with the turn.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from model.canonical import canonicalize, principal_angle, turned_finely, upright_turn
from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.evaluate import predict
from model.rotation import rotate_bilinear

__all__ = [
    "REFERENCE_UPSAMPLING",
    "TURN_BINS",
    "axis_misses",
    "main",
    "mistakes_by_turn",
    "slant_spread",
    "turn_interpolation_by_turn",
    "turn_spread",
]

TURN_BINS = (0.0, 5.0, 15.0, 30.0, 60.0, 90.0)  # edges, degrees of |turn| to the axis
REFERENCE_UPSAMPLING = 8  # the reference turn: bicubic up 8x, bilinear turn, 8x8 area down


def axis_misses(images: torch.Tensor, seed: int = 0) -> np.ndarray:
    """``|phi(turned) - phi(upright) - angle|`` modulo 180, in degrees, ``(N,)``, each image turned by its own
    uniform random angle (the evaluation protocol's draw for ``seed``)."""
    degrees = torch.from_numpy(np.random.default_rng(seed).uniform(0.0, 360.0, len(images)))
    moved = principal_angle(rotate_bilinear(images, degrees)) - principal_angle(images)  # (N,)
    return (torch.remainder(moved - degrees + 90.0, 180.0) - 90.0).abs().numpy()


def turn_spread(images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The size of the turn to the axis: median, share beyond 45°, 99th percentile, and the median per digit."""
    turns = upright_turn(images).abs().numpy()  # (N,) degrees in [0, 90]
    spread = {
        "median": float(np.median(turns)),
        "beyond_45": float(np.mean(turns > 45)),
        "p99": float(np.percentile(turns, 99)),
    }
    for digit in labels.unique().tolist():
        spread[f"median_{digit}"] = float(np.median(turns[(labels == digit).numpy()]))
    return spread


def slant_spread(images: torch.Tensor, labels: torch.Tensor) -> dict[int, float]:
    """Per digit, the median ``|phi - mean phi|`` in degrees over its images: how far the axes of upright digits of
    one class stand from the class's mean axis (mean taken on the doubled angle, since an axis is defined mod 180)."""
    doubled = torch.polar(torch.ones_like(phi := principal_angle(images)), torch.deg2rad(2 * phi))  # (N,) e^{2i phi}
    spread = {}
    for digit in labels.unique().tolist():
        members = labels == digit
        mean = torch.rad2deg(torch.angle(doubled[members].mean())) / 2
        deviation = torch.remainder(phi[members] - mean + 90.0, 180.0) - 90.0
        spread[digit] = float(deviation.abs().median())
    return spread


def _turn_bins(turns: torch.Tensor) -> list[torch.Tensor]:
    """A mask ``(N,)`` per :data:`TURN_BINS` bin of ``|turn|`` (the last bin closed)."""
    turns = turns.abs()
    return [
        (turns >= low) & ((turns < high) if high < TURN_BINS[-1] else (turns <= high))
        for low, high in itertools.pairwise(TURN_BINS)
    ]


def turn_interpolation_by_turn(images: torch.Tensor, batch_size: int = 250) -> list[tuple[int, float]]:
    """``(digits, median relative difference)`` per :data:`TURN_BINS` bin of the images' ``|upright_turn|``:
    ``||c(x) - r(x)|| / ||r(x)||`` of the image turned as :func:`canonicalize` turns it, ``c``, against the same turn
    made at :data:`REFERENCE_UPSAMPLING` times the resolution, ``r`` (nan for an empty bin; ``torch.median``: the
    lower of the two middle values for an even count). At a turn of 0 it is the 2x resampling against the 8x one."""
    differences, turns = [], []
    for chunk in images.split(batch_size):  # the 8x copies of 10,000 digits would take gigabytes at once
        turned, turn = canonicalize(chunk)  # (B, C, H, W), (B,)
        reference = turned_finely(chunk, turn, REFERENCE_UPSAMPLING)  # (B, C, H, W)
        norms = reference.flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
        differences.append((turned - reference).flatten(1).norm(dim=1) / norms)
        turns.append(turn)
    difference, turn = torch.cat(differences), torch.cat(turns)  # (N,), (N,)
    return [
        (int(members.sum()), float(difference[members].median()) if members.any() else float("nan"))
        for members in _turn_bins(turn)
    ]


def mistakes_by_turn(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int]]:
    """``(digits, mistakes)`` of ``model``'s answers (argmax of its logits) per :data:`TURN_BINS` bin of the
    images' ``|upright_turn|``."""
    with torch.inference_mode():
        wrong = predict(model, images) != labels
    return [(int(members.sum()), int((wrong & members).sum())) for members in _turn_bins(upright_turn(images))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=2000, help="the first N test and training digits")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--cards", nargs="*", type=Path, default=[], help="models whose mistakes to sort by the turn")
    args = parser.parse_args(argv)
    test, test_labels = load_mnist(train=False, root=args.data_dir)
    missed = axis_misses(test[: args.digits])
    print(
        f"axis of {len(missed)} test digits turned by the protocol: off by a median {np.median(missed):.3f}°, "
        f"90th percentile {np.percentile(missed, 90):.3f}°, more than 5° for {int((missed > 5).sum())} digits"
    )
    train, labels = load_mnist(train=True, root=args.data_dir)
    spread = turn_spread(train[: args.digits], labels[: args.digits])
    by_digit = ", ".join(f"{d}: {spread[f'median_{d}']:.0f}°" for d in range(10))
    print(
        f"turn of {args.digits} training digits to their axis: median |turn| {spread['median']:.1f}°, "
        f"{100 * spread['beyond_45']:.1f}% beyond 45°, 99th percentile {spread['p99']:.0f}°; median by digit {by_digit}"
    )
    slant = slant_spread(test[: args.digits], test_labels[: args.digits])
    by_digit = ", ".join(f"{d}: {slant[d]:.1f}°" for d in sorted(slant))
    print(f"axis of {args.digits} upright test digits from their class's mean axis: median by digit {by_digit}")
    interpolation = turn_interpolation_by_turn(test[: args.digits])
    cells = ", ".join(
        f"{low:g}-{high:g}°: {100 * median:.2f}% ({total} digits)"
        for (low, high), (total, median) in zip(itertools.pairwise(TURN_BINS), interpolation, strict=True)
    )
    print(f"the turn to the axis against one made at {REFERENCE_UPSAMPLING}x, upright test digits, median by |turn|:")
    print(f"  {cells}")
    for card in args.cards:
        model, _ = load_checkpoint(card)
        counts = mistakes_by_turn(model, test[: args.digits], test_labels[: args.digits])
        cells = ", ".join(
            f"{low:g}-{high:g}°: {wrong} of {total} ({100 * wrong / max(total, 1):.2f}%)"
            for (low, high), (total, wrong) in zip(itertools.pairwise(TURN_BINS), counts, strict=True)
        )
        print(f"{card.stem}, upright mistakes by |turn| to the axis: {cells}")


if __name__ == "__main__":
    main()
