"""How far a network is from invariance at any angle, layer by layer.

    python -m model.equivariance weights/gcnn_c8_pose.json weights/cnn_seed.json [--digits 200]
    python -m model.equivariance runs/x/gcnn_c8_blur.json --input-sigma 1.0   # the digits low-passed first

Arguments are checkpoint cards, or registered model names (a fresh network, seeded, for architecture
probes before any training).

**The inputs carry (almost) no interpolation error of their own.** Each test digit is upsampled 4x
(bicubic), turned at that resolution (:func:`model.rotation.rotate`: bilinear, exact for quarter
turns), and reduced back by 4x4 area averaging. The upright reference goes through the same path with
angle 0, so the two differ by the turn alone; what remains is the network's own error.

**What is compared.** A feature map of a C_N network turned by an angle that is not a quarter turn
cannot be turned back on its 7x7 grid without interpolating it, which would add an error of the
measurement's own. So each layer is compared through an invariant descriptor ``d``: the maximum over
the group axis (none for a plain CNN), then the mean over space, ``(B, C)``. For the whole network,
``d`` is the logits. The relative error at angle ``theta`` is ``||d(T x) - d(x)|| / ||d(x)||``
(Frobenius norm over the batch), ``T`` the turn of the input. An exactly equivariant network scores 0
at every angle; at quarter turns the shipped G-CNNs score float rounding.

``--input-sigma S`` blurs the test digits with an isotropic Gaussian of ``S`` pixels before anything else (both the
upright reference and the turned digits): how much of the error the digits' fine detail provokes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.networks import BaselineCNN, GroupEquivariantCNN, blurred, gaussian_kernel
from model.registry import create_model
from model.rotation import rotate

__all__ = ["ANGLES", "descriptors", "equivariance_errors", "turned_cleanly"]

ANGLES = (90.0, 45.0, 22.5, 10.0)
UPSAMPLING = 4


def turned_cleanly(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """``(B, 1, H, W)`` images turned at 4x resolution and reduced back (see the module docstring)."""
    fine = F.interpolate(images, scale_factor=UPSAMPLING, mode="bicubic", align_corners=False)
    return F.avg_pool2d(rotate(fine, degrees), UPSAMPLING)


def descriptors(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The invariant descriptor ``(B, C)`` of every layer's output, then the logits ``(B, classes)``."""
    if isinstance(model, GroupEquivariantCNN):
        outputs = model.layer_outputs(model.low_pass(model.canonical_input(images)[0]))
        found = [out.amax(dim=2).mean(dim=(-2, -1)) for out in outputs]  # (B, C, G, H, W) -> (B, C)
    elif isinstance(model, BaselineCNN):
        outputs = model.layer_outputs(images)
        found = [out.mean(dim=(-2, -1)) for out in outputs]  # (B, C, H, W) -> (B, C)
    else:
        raise TypeError(f"no layer outputs for {type(model).__name__}")
    return [*found, model.forward_head(outputs[-1])]


@torch.no_grad()
def equivariance_errors(
    model: nn.Module, images: torch.Tensor, angles: tuple[float, ...] = ANGLES
) -> dict[float, list[float]]:
    """``{angle: [relative error of layer 0, .., layer L-1, logits]}`` (eval mode)."""
    model.eval()
    upright = descriptors(model, turned_cleanly(images, 0.0))
    errors = {}
    for angle in angles:
        turned = descriptors(model, turned_cleanly(images, angle))
        errors[angle] = [float((t - u).norm() / u.norm()) for t, u in zip(turned, upright, strict=True)]
    return errors


def _load(source: str, seed: int) -> tuple[str, nn.Module]:
    if source.endswith(".json"):
        model, card = load_checkpoint(Path(source))
        return card["name"], model
    torch.manual_seed(seed)
    return f"{source} (untrained)", create_model(source)


def table(results: dict[str, dict[float, list[float]]]) -> str:
    """A markdown table: one row per model and angle, one column per layer."""
    depth = max(len(row) for errors in results.values() for row in errors.values())
    header = "| model | turn | " + " | ".join(f"layer {i}" for i in range(depth - 1)) + " | logits |"
    lines = [header, "|---|---|" + "---|" * depth]
    for name, errors in results.items():
        for angle, row in errors.items():
            cells = [f"{value:.4f}" for value in row[:-1]] + [""] * (depth - len(row)) + [f"{row[-1]:.4f}"]
            lines.append(f"| {name} | {angle:g}° | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[float, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="checkpoint cards (.json) or registered model names")
    parser.add_argument("--digits", type=int, default=200, help="the first N test digits (default 200)")
    parser.add_argument("--angles", type=float, nargs="+", default=list(ANGLES))
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed of untrained models")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--input-sigma", type=float, default=0.0, help="blur the digits first (Gaussian, pixels)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    images, _ = load_mnist(train=False, root=args.data_dir)
    images = blurred(images[: args.digits], gaussian_kernel(args.input_sigma))
    results = {}
    for source in args.models:
        name, model = _load(source, args.seed)
        results[name] = equivariance_errors(model, images, tuple(args.angles))
    print(table(results))
    return results


if __name__ == "__main__":
    main()
