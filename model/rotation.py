"""Rotating images about their centre: the one rotation function of the project.

Convention: angles are in degrees, counter-clockwise as the image is displayed
(row 0 at the top). The centre of rotation is the image centre
``((H - 1) / 2, (W - 1) / 2)`` in pixel coordinates, so multiples of 90 degrees
map the pixel grid onto itself (for square images) and are done exactly with
``torch.rot90``. Any other angle uses bilinear interpolation with zero fill and
keeps the image size. The evaluation protocol and the web service both rotate
through this module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["is_right_angle", "rotate", "rotate_bilinear"]


def is_right_angle(degrees: float) -> bool:
    """True when ``degrees`` is a whole multiple of 90 (up to float rounding)."""
    quarter_turns = degrees / 90.0
    return math.isclose(quarter_turns, round(quarter_turns), abs_tol=1e-9)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate ``(..., H, W)`` images counter-clockwise by ``degrees``.

    Multiples of 90 degrees are exact index permutations (a quarter turn of a
    non-square image transposes its size); other angles are bilinear with zero
    fill and keep the size.
    """
    if not math.isfinite(degrees):
        raise ValueError(f"rotation angle must be finite, got {degrees!r}")
    if is_right_angle(degrees):
        return torch.rot90(images, k=round(degrees / 90.0) % 4, dims=(-2, -1))
    return rotate_bilinear(images, degrees)


def rotate_bilinear(
    images: torch.Tensor, degrees: float | torch.Tensor, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate ``(..., H, W)`` images by bilinear interpolation, zero fill, same size.

    ``degrees`` is one angle for all images or a tensor with one angle per
    leading index (shape ``images.shape[:-2]`` flattened to ``(B,)`` where
    ``images`` is ``(B, ..., H, W)``). ``centre`` ``(B, 2)``, (row, column) in
    pixels: each image turns about this point of its own, which lands at the
    image centre (a turn and a shift in one resampling); by default the image
    centre itself.
    """
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got {images.dtype}")
    height, width = images.shape[-2:]
    batch = images.shape[0] if images.dim() > 2 else 1
    flat = images.reshape(batch, -1, height, width)  # (B, C, H, W)
    angles = torch.as_tensor(degrees, dtype=torch.float64, device=images.device)
    angles = angles.expand(batch) if angles.dim() == 0 else angles.reshape(batch)
    grid = _sampling_grid(height, width, angles, centre).to(images.dtype)  # (B, H, W, 2)
    rotated = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return rotated.reshape(images.shape)


def _sampling_grid(height: int, width: int, degrees: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    """Where each output pixel samples the input, in grid_sample's [-1, 1] units.

    Output pixel (row i, column j) sits at plane point x = j - cx, y = cy - i
    (y up); rotating the image by theta means it reads the input at R(-theta) (x, y),
    about the image centre or about ``centre`` ``(B, 2)`` (row, column).
    """
    theta = torch.deg2rad(degrees)[:, None, None]  # (B, 1, 1)
    rows = torch.arange(height, dtype=torch.float64, device=degrees.device)
    cols = torch.arange(width, dtype=torch.float64, device=degrees.device)
    row, col = torch.meshgrid(rows, cols, indexing="ij")  # (H, W)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    x, y = col - cx, cy - row
    cos, sin = torch.cos(theta), torch.sin(theta)
    src_x = cos * x + sin * y  # (B, H, W)
    src_y = -sin * x + cos * y
    if centre is None:
        src_col, src_row = src_x + cx, cy - src_y
    else:
        about = centre.to(device=degrees.device, dtype=torch.float64)[:, :, None, None]  # (B, 2, 1, 1)
        src_col, src_row = src_x + about[:, 1], about[:, 0] - src_y
    # align_corners=False: pixel centre j sits at (2j + 1) / W - 1
    return torch.stack(((2 * src_col + 1) / width - 1, (2 * src_row + 1) / height - 1), dim=-1)
