"""Shared helpers for the library tests."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model.groups import get_group
from model.orientation import ANGLE_STEPS, Pose


def smooth_images(batch: int, channels: int, size: int, sigma: float = 1.5, seed: int = 0) -> torch.Tensor:
    """Band-limited random images, zero outside a centred disk (so rotations lose nothing).

    Interpolated rotations are only approximately equivariant; they are tested on
    inputs like these, where bilinear resampling is accurate.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch * channels, 1, size, size, generator=generator)
    radius = int(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, radius))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    centre = (size - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(size) - centre, torch.arange(size) - centre, indexing="ij")
    disk = (torch.hypot(rows, cols) < size / 2 - 3).float()
    images = (blurred * disk).reshape(batch, channels, size, size)
    return images / images.std()


def moved(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``(..., H, W)`` images moved down by ``dy`` and right by ``dx`` whole pixels; background (0) fills in."""
    out = torch.zeros_like(x)
    height, width = x.shape[-2:]
    out[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = x[
        ..., max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def centre(x: torch.Tensor, margin: int) -> torch.Tensor:
    """The spatial centre of ``(..., H, W)``, ``margin`` pixels cut from each side."""
    return x[..., margin:-margin, margin:-margin]


def turned_by(after: float, before: float) -> float:
    """Counter-clockwise angle from ``before`` to ``after`` (degrees), in (-180, 180]."""
    return -((before - after + 180.0) % 360.0 - 180.0)


def pose_on_cells(cells: list[dict[tuple[int, int], float]]) -> Pose:
    """A C8 pose whose mass sits on the given ``(digit, degree)`` cells (the rest ~0), one dict per row."""
    log_joint = torch.full((len(cells), 10, ANGLE_STEPS), -60.0, dtype=torch.float64)
    for row, masses in enumerate(cells):
        for (digit, degree), mass in masses.items():
            log_joint[row, digit, degree] = math.log(mass)
    return Pose(get_group("C8"), log_joint - torch.logsumexp(log_joint, dim=(1, 2), keepdim=True))
