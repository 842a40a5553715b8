"""Turning each input to its own principal axis before a G-CNN reads it: invariance between quarter turns.

A C_N network on the pixel grid is exactly invariant to quarter turns and only approximately to anything
in between (docs/evaluation.md). The principal axis of an image's ink turns with the image at *every*
angle. With ``c`` the centre of mass and ``z = (x - c_x) + i (y - c_y)`` a pixel's place as a complex
number (x right, y up, :mod:`model.groups`' convention), the axis is at

    phi(I) = arg( sum_p I(p) z_p^2 ) / 2        (degrees, defined modulo 180)

Turning the image counter-clockwise by ``alpha`` multiplies every ``z_p`` by ``e^{i alpha}`` and so moves
``phi`` by exactly ``alpha`` (mod 180) in the continuum; on the grid only the turn's interpolation
moves it further (median 0.03° on MNIST test digits turned by the evaluation protocol).

:func:`canonicalize` turns every image by ``90 - phi`` (wrapped to [-90, 90)), so that its axis stands
vertical. Two inputs that differ by any turn then differ, after it, by a multiple of 180° (up to
interpolation), which a network whose group holds the half turn (C_N, D_N with N even) reads exactly.
The turn is a function of the image alone (no learned part, no randomness): a network trained on upright
digits sees each of them once, turned to its own axis, never turned at random.

Mirrors: ``phi`` of a left-right flipped image is ``-phi``, so canonicalising commutes with the flip too.

Where the axis is weak (an ink distribution nearly isotropic, e.g. some 0s and 8s), interpolation can move
``phi`` by more; the input then reaches the network turned by what that error is (0.1% of MNIST test
digits by more than 5°), which the network reads as it reads any turned digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.rotation import rotate_bilinear

__all__ = ["UPSAMPLING", "canonicalize", "principal_angle", "upright_turn"]

UPSAMPLING = 2  # the turn is made at 2x resolution (bicubic up, bilinear turn, area down): less blur than at 1x


def principal_angle(images: torch.Tensor) -> torch.Tensor:
    """``phi`` of each ``(B, C, H, W)`` image (channels summed; negative values count as no ink), degrees
    in (-90, 90], float64 ``(B,)``. An image without ink has angle 0."""
    ink = images.detach().double().clamp_min(0.0).sum(dim=1)  # (B, H, W)
    height, width = ink.shape[-2:]
    rows = torch.arange(height, dtype=torch.float64, device=ink.device)[:, None]  # (H, 1)
    cols = torch.arange(width, dtype=torch.float64, device=ink.device)[None, :]  # (1, W)
    mass = ink.sum(dim=(-2, -1)).clamp_min(1e-12)  # (B,)
    row_c = (ink * rows).sum(dim=(-2, -1)) / mass  # (B,)
    col_c = (ink * cols).sum(dim=(-2, -1)) / mass
    x = cols - col_c[:, None, None]  # (B, 1, W): right
    y = row_c[:, None, None] - rows  # (B, H, 1): up
    # sum I z^2 = sum I (x^2 - y^2) + 2i sum I x y
    real = (ink * (x * x - y * y)).sum(dim=(-2, -1))
    imag = (2 * ink * x * y).sum(dim=(-2, -1))
    return torch.rad2deg(torch.atan2(imag, real)) / 2


def upright_turn(images: torch.Tensor) -> torch.Tensor:
    """The counter-clockwise turn ``(B,)`` in degrees, in [-90, 90), that stands each image's axis vertical."""
    return torch.remainder(90.0 - principal_angle(images) + 90.0, 180.0) - 90.0


def canonicalize(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` images turned by :func:`upright_turn` (made at 2x resolution), and the turn ``(B,)``.

    Gradients do not flow into the turn's angle (a function of the input alone), only through the
    resampling of the pixels.
    """
    if images.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images, got {tuple(images.shape)}")
    turn = upright_turn(images)
    fine = F.interpolate(images, scale_factor=UPSAMPLING, mode="bicubic", align_corners=False)
    turned = F.avg_pool2d(rotate_bilinear(fine, turn.to(images.device)), UPSAMPLING)
    return turned, turn
