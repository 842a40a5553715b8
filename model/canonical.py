"""Turning each input to its own principal axis before a G-CNN reads it: invariance between quarter turns.

A C_N network on the pixel grid is exactly invariant to quarter turns and only approximately to anything
in between (docs/evaluation.md). The principal axis of an image's ink turns with the image at *every*
angle. With ``c`` the centre of mass and ``z = (x - c_x) + i (y - c_y)`` a pixel's place as a complex
number (x right, y up, :mod:`model.groups`' convention), the axis is at

    phi(I) = arg( sum_p I(p) z_p^2 ) / 2        (degrees, defined modulo 180)

Turning the image counter-clockwise by ``alpha`` multiplies every ``z_p`` by ``e^{i alpha}`` and so moves
``phi`` by exactly ``alpha`` (mod 180) in the continuum; on the grid only the turn's interpolation
moves it further (``python -m bench.canonical_axis`` measures it: a median 0.03° on the first 2,000 MNIST test
digits turned by the evaluation protocol).

:func:`canonicalize` turns every image by ``90 - phi`` (wrapped to [-90, 90)), so that its axis stands
vertical. Two inputs that differ by any turn then differ, after it, by a multiple of 180° (up to
interpolation), which a network whose group holds the half turn (C_N, D_N with N even) reads exactly.
The turn is a function of the image alone (no learned part, no randomness): a network trained on upright
digits sees each of them at one angle, its own axis's, never at a random one. That angle varies from digit to
digit (``python -m bench.canonical_axis`` prints its spread over training digits), so the convolutions do see
digits at many angles: the data are upright, the network's input is each digit at its own turn.

Mirrors: ``phi`` of a left-right flipped image is ``-phi``, so canonicalising commutes with the flip too.

**Where the digit sits** (``centred=True``): the turn above is made about the image centre, so a digit whose
centre of mass is off it reaches the network moved by the turn. MNIST puts every digit's centre of mass half a pixel
down and right of the image centre, and a network invariant to the half turn uses that offset to tell a 6 from a 9
(``python -m bench.centre_of_mass``). With ``centred`` the turn is made about the centre of mass, which lands on the
image centre: every input reaches the network with its ink centred on the grid's centre of symmetry, wherever it
sat, and two inputs that differ by a turn and a shift still differ by a half turn about that centre, exact on the
grid. The offset is then gone for every digit, and with it what told a 6 from a 9 turned by half a turn
(docs/evaluation.md measures what that costs on MNIST).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.rotation import rotate_bilinear

__all__ = [
    "UPSAMPLING",
    "axis_angle",
    "canonicalize",
    "centre_of_mass",
    "ink_centre",
    "principal_angle",
    "standing_turn",
    "turned_finely",
    "upright_turn",
]

UPSAMPLING = 2  # the turn is made at 2x resolution (bicubic up, bilinear turn, area down): less blur than at 1x


def ink_centre(ink: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre of mass (row ``(B,)``, column ``(B,)``) of ink ``(B, H, W)`` (>= 0), given the pixels' row
    ``(H, 1)`` and column ``(1, W)`` indices in its dtype. The maths, shared with the export (:mod:`model.export`)."""
    mass = ink.sum(dim=(1, 2)).clamp_min(1e-12)  # (B,)
    return (ink * rows).sum(dim=(1, 2)) / mass, (ink * cols).sum(dim=(1, 2)) / mass


def axis_angle(ink: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``phi`` ``(B,)`` in degrees, (-90, 90], of ink ``(B, H, W)`` (>= 0), given the pixels' row ``(H, 1)`` and
    column ``(1, W)`` indices in its dtype. The maths, shared with the export (:mod:`model.export`)."""
    row, col = ink_centre(ink, rows, cols)  # (B,), (B,)
    x = cols - col[:, None, None]  # (B, 1, W): right of the centre of mass
    y = row[:, None, None] - rows  # (B, H, 1): up from it
    real = (ink * (x * x - y * y)).sum(dim=(1, 2))  # (B,): sum I z^2 = sum I (x^2 - y^2) + 2i sum I x y
    imag = (2 * ink * x * y).sum(dim=(1, 2))  # (B,)
    return torch.rad2deg(torch.atan2(imag, real)) / 2


def standing_turn(phi: torch.Tensor) -> torch.Tensor:
    """The counter-clockwise turn ``90 - phi`` wrapped to [-90, 90): it stands an axis at ``phi`` vertical."""
    return torch.remainder(180.0 - phi, 180.0) - 90.0


def principal_angle(images: torch.Tensor) -> torch.Tensor:
    """``phi`` of each ``(B, C, H, W)`` image (channels summed; negative values count as no ink), degrees
    in (-90, 90], float64 ``(B,)``. An image without ink has angle 0."""
    ink = images.detach().double().clamp_min(0.0).sum(dim=1)  # (B, H, W)
    height, width = ink.shape[-2:]
    rows = torch.arange(height, dtype=torch.float64, device=ink.device)[:, None]  # (H, 1)
    cols = torch.arange(width, dtype=torch.float64, device=ink.device)[None, :]  # (1, W)
    return axis_angle(ink, rows, cols)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(row, column) ``(B, 2)`` float64 of each ``(B, C, H, W)`` image's ink (channels summed, negative values as
    none); the image centre for an image without ink."""
    ink = images.detach().double().clamp_min(0.0).sum(dim=1)  # (B, H, W)
    height, width = ink.shape[-2:]
    rows = torch.arange(height, dtype=torch.float64, device=ink.device)[:, None]  # (H, 1)
    cols = torch.arange(width, dtype=torch.float64, device=ink.device)[None, :]  # (1, W)
    row, col = ink_centre(ink, rows, cols)
    empty = ink.sum(dim=(1, 2)) <= 0
    row, col = row.masked_fill(empty, (height - 1) / 2), col.masked_fill(empty, (width - 1) / 2)
    return torch.stack((row, col), dim=1)


def upright_turn(images: torch.Tensor) -> torch.Tensor:
    """The counter-clockwise turn ``(B,)`` in degrees, in [-90, 90), that stands each image's axis vertical."""
    return standing_turn(principal_angle(images))


def turned_finely(
    images: torch.Tensor, degrees: torch.Tensor, upsampling: int = UPSAMPLING, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B, C, H, W)`` images each turned counter-clockwise by its own angle ``(B,)`` at ``upsampling`` times the
    resolution: bicubic up, bilinear turn, area down. About the image centre, or about ``centre`` ``(B, 2)``
    ((row, column) in pixels), which then lands on the image centre."""
    fine = F.interpolate(images, scale_factor=upsampling, mode="bicubic", align_corners=False)  # (B, C, uH, uW)
    fine_centre = None if centre is None else centre * upsampling + (upsampling - 1) / 2  # pixel p -> u p + (u-1)/2
    return F.avg_pool2d(rotate_bilinear(fine, degrees, fine_centre), upsampling)  # (B, C, H, W)


def canonicalize(images: torch.Tensor, centred: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` images turned by :func:`upright_turn` (made at 2x resolution), and the turn ``(B,)``;
    with ``centred``, turned about their centre of mass, which lands on the image centre.

    Gradients do not flow into the turn's angle or the centre (functions of the input alone), only through
    the resampling of the pixels.
    """
    if images.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images, got {tuple(images.shape)}")
    turn = upright_turn(images)  # (B,) float64, on the images' device
    return turned_finely(images, turn, centre=centre_of_mass(images) if centred else None), turn
