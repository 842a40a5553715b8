"""How an exactly quarter-turn-invariant G-CNN tells an upright 6 from a 9: MNIST's centre of mass.

    python -m bench.centre_of_mass weights/gcnn_c8_wide.json

A network invariant to the half turn gives the same answer for a 6 and for the
same 6 turned by 180 degrees, which looks like a 9. MNIST centres each digit's
mass at pixel (14, 14), half a pixel off the centre (13.5, 13.5) that the
network's half turn turns about: an upright digit has its mass down and right
of the centre, a digit turned by 180 degrees up and left. This script measures
whether the shipped model uses that: on the test digits labelled 6 and 9 it
compares the accuracy of the images as MNIST has them with the same images
shifted by half a pixel (bilinear) so that their mass sits on the rotation
centre, and, as a control for the blur of the shift, shifted by half a pixel
the other way (mass at (14.5, 14.5)). Then the same for every test digit, and
how many of the mistakes on the shifted ones read a 6 as a 9 or a 9 as a 6.

    python -m bench.centre_of_mass weights/gcnn_c8_wide.json weights/gcnn_c8_canon_pose.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.candidates import six_nine_swaps
from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.evaluate import accuracy, predict

__all__ = ["main", "shift"]


def shift(images: torch.Tensor, rows: float, cols: float) -> torch.Tensor:
    """``(B, 1, H, W)`` moved by ``rows`` down and ``cols`` right (bilinear, zero fill)."""
    batch, _, height, width = images.shape
    theta = torch.tensor([[1.0, 0.0, -2 * cols / width], [0.0, 1.0, -2 * rows / height]]).expand(batch, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


SHIFTS = (
    ("as in MNIST (mass at 14, 14)", 0.0),
    ("shifted up-left by half a pixel (mass on the rotation centre 13.5, 13.5)", -0.5),
    ("control: shifted down-right by half a pixel (mass at 14.5, 14.5)", 0.5),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", type=Path, nargs="*", default=[Path("weights/gcnn_c8_wide.json")])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    every_image, every_label = load_mnist(train=False, root=args.data_dir)
    six_nine = (every_label == 6) | (every_label == 9)
    images, labels = every_image[six_nine], every_label[six_nine]
    centre = images.sum(dim=(0, 1))  # (H, W) mass of all of them
    rows, cols = torch.arange(28.0), torch.arange(28.0)
    com = (float((centre.sum(1) * rows).sum() / centre.sum()), float((centre.sum(0) * cols).sum() / centre.sum()))
    for path in args.cards:
        model, card = load_checkpoint(path)
        print(
            f"{card['name']}: {len(labels)} test digits labelled 6 or 9, "
            f"mean centre of mass at ({com[0]:.2f}, {com[1]:.2f}) (row, column)"
        )
        for name, offset in SHIFTS:
            right = accuracy(predict(model, shift(images, offset, offset)), labels)
            print(f"  {name:<76} {100 * right:6.2f}%")
        print(f"{card['name']}: all {len(every_label)} test digits (mistakes that swap 6 and 9)")
        for name, offset in SHIFTS:
            predicted = predict(model, shift(every_image, offset, offset))
            swaps = six_nine_swaps(predicted, every_label)
            wrong = int((predicted != every_label).sum())
            print(f"  {name:<76} {100 * accuracy(predicted, every_label):6.2f}%  ({swaps} of {wrong})")


if __name__ == "__main__":
    main()
