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
from model.rotation import rotate

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
        return math.isclose(self.degrees / 90.0, round(self.degrees / 90.0), abs_tol=1e-9)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """The transformed ``(..., H, W)`` images (a quarter turn of a non-square image swaps H and W)."""
        if self.group is not None and self.element is not None:
            return self.group.transform_images(images, self.element)
        if self.is_identity:
            return images
        return rotate(images, self.degrees)


def transform_picture(pixels: np.ndarray, transform: Transform) -> np.ndarray:
    """Transform an 8-bit ``(H, W)`` or ``(H, W, C)`` picture for display.

    Quarter turns and mirrors permute the pixels exactly (the result is 8-bit as
    it came). Any other angle interpolates; the picture gets an alpha channel so
    that the corners the rotation uncovers are transparent rather than black, and
    is rotated with premultiplied alpha so that edges do not darken.
    """
    if transform.is_identity:
        return pixels
    if transform.is_exact:
        source = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())  # torch wants writable memory
        channels_first = source if pixels.ndim == 2 else source.permute(2, 0, 1)
        moved = transform.apply(channels_first)  # uint8 rot90/flip, (C, H', W') or (H', W')
        return (moved if moved.dim() == 2 else moved.permute(1, 2, 0)).contiguous().numpy()
    with_alpha = _add_alpha(pixels)  # (H, W, C + 1 or C)
    values = torch.from_numpy(with_alpha.astype(np.float32)).permute(2, 0, 1).div_(255.0)  # (C, H, W)
    alpha = values[-1:]
    values[:-1] *= alpha  # premultiply
    rotated = transform.apply(values)
    alpha = rotated[-1:]
    colour = torch.where(alpha > 1e-6, rotated[:-1] / alpha.clamp_min(1e-6), torch.zeros_like(rotated[:-1]))
    result = torch.cat([colour, alpha]).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return result.permute(1, 2, 0).contiguous().numpy()


def _add_alpha(pixels: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` grey + alpha or ``(H, W, 4)`` RGBA; an existing alpha channel is kept."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] in (2, 4):
        return pixels
    opaque = np.full((*pixels.shape[:2], 1), 255, dtype=np.uint8)
    return np.concatenate([pixels, opaque], axis=2)
