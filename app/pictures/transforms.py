"""The transformation a request asks for: nothing, a group element, or an angle.

Group elements follow :mod:`model.groups` (index ``i = s*N + k`` is ``r^k m^s``:
mirror left-right first when ``s = 1``, then rotate counter-clockwise by
``k * 360/N`` degrees). Angles are degrees, counter-clockwise. Both act through
:mod:`model.rotation`: exact for multiples of 90 degrees, bilinear with zero fill
otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from app.errors import InvalidTransformError
from model.groups import Group, get_group
from model.rotation import is_right_angle, rotate

__all__ = ["Transform", "parse_group", "transform_picture"]


def parse_group(name: str) -> Group:
    """The group called ``name`` (``C4``, ``D8``, ...), or InvalidTransformError."""
    try:
        return get_group(name)
    except ValueError as error:
        raise InvalidTransformError(str(error)) from error


@dataclass(frozen=True)
class Transform:
    """Identity, ``group`` element ``element``, or a rotation by ``degrees`` (one of them)."""

    degrees: float = 0.0
    reflection: bool = False
    group: Group | None = None
    element: int | None = None

    @classmethod
    def from_element(cls, group: Group, element: int) -> Transform:
        if not 0 <= element < group.order:
            raise InvalidTransformError(f"element {element} is out of range for {group.name}: use 0..{group.order - 1}")
        return cls(group.degrees(element), group.is_reflection(element), group, element)

    @classmethod
    def from_angle(cls, degrees: float) -> Transform:
        if not math.isfinite(degrees):
            raise InvalidTransformError(f"angle must be a finite number of degrees, got {degrees!r}")
        normalised = math.fmod(degrees, 360.0) % 360.0  # exact for any finite float...
        return cls(degrees=normalised if normalised < 360.0 else 0.0)  # ...but -1e-20 % 360 rounds up to 360

    @property
    def is_identity(self) -> bool:
        return self.degrees == 0.0 and not self.reflection

    @property
    def is_exact(self) -> bool:
        """Whether it maps the pixel grid onto itself (quarter turns and mirrors: no interpolation)."""
        return is_right_angle(self.degrees)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """The transformed ``(..., H, W)`` images (a quarter turn of a non-square image swaps H and W)."""
        if self.group is not None and self.element is not None:
            return self.group.transform_images(images, self.element)
        if self.is_identity:
            return images
        return rotate(images, self.degrees)


def transform_picture(pixels: np.ndarray, transform: Transform) -> np.ndarray:
    """Transform an 8-bit ``(H, W)`` or ``(H, W, C)`` picture for display; the result keeps its mode.

    Quarter turns and mirrors permute the pixels exactly. Any other angle
    interpolates, and the corners it uncovers need a colour: a picture with
    transparency gets transparent corners (rotated with premultiplied alpha, so
    edges do not darken); an opaque one gets its own background colour, the
    median of its border, so that a digit on white paper stays on white paper
    and an MNIST digit on black stays on black (and still classifies the same).
    """
    if transform.is_identity:
        return pixels
    if transform.is_exact:
        source = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())  # torch wants writable memory
        channels_first = source if pixels.ndim == 2 else source.permute(2, 0, 1)
        moved = transform.apply(channels_first)  # uint8 rot90/flip, (C, H', W') or (H', W')
        return (moved if moved.dim() == 2 else moved.permute(1, 2, 0)).contiguous().numpy()
    values = torch.from_numpy(pixels.astype(np.float32))
    values = values[None] if values.dim() == 2 else values.permute(2, 0, 1)  # (C, H, W)
    rotated = _rotate_transparent(values, transform) if values.shape[0] in (2, 4) else _rotate_on(values, transform)
    result = rotated.clamp_(0.0, 255.0).round_().to(torch.uint8)
    return (result[0] if pixels.ndim == 2 else result.permute(1, 2, 0)).contiguous().numpy()


def _rotate_on(values: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Opaque ``(C, H, W)``: uncovered pixels take the border's median colour.

    Rotating ``values - fill`` with zero fill and adding ``fill`` back blends each
    edge pixel with exactly that colour.
    """
    border = torch.cat([values[:, 0], values[:, -1], values[:, :, 0], values[:, :, -1]], dim=1)  # (C, 2H + 2W)
    fill = border.median(dim=1).values[:, None, None]  # (C, 1, 1)
    return transform.apply(values - fill) + fill


def _rotate_transparent(values: torch.Tensor, transform: Transform) -> torch.Tensor:
    """``(C, H, W)`` with alpha last: uncovered pixels become transparent."""
    alpha = values[-1:] / 255.0
    premultiplied = torch.cat([values[:-1] * alpha, alpha])
    rotated = transform.apply(premultiplied)
    alpha = rotated[-1:]
    colour = torch.where(alpha > 1e-6, rotated[:-1] / alpha.clamp_min(1e-6), torch.zeros_like(rotated[:-1]))
    return torch.cat([colour, alpha * 255.0])
