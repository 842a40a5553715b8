"""Training-time augmentation that is not a rotation: whole-pixel shifts.

``random_shift`` moves every image of a batch by its own whole number of pixels, up to ``max_shift``
in each direction, filling with background (zeros), as ``torchvision.transforms.RandomCrop(28,
padding=max_shift)`` does for one image. A whole-pixel shift needs no interpolation and turns nothing:
the digits stay upright, as every training digit here is (``model.train``: robustness to rotation must
come from the architecture). No shipped model uses it: on the served layout it cost 1.3 points of upright
held-out digits, mostly 6s and 9s, because it moves MNIST's half-pixel centre-of-mass offset that the
half-turn-invariant networks read to tell them apart (docs/evaluation.md, "Where MNIST puts a digit").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_shift"]


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` ``(B, C, H, W)``, each moved by its own ``(dy, dx)`` drawn uniformly from
    ``-max_shift..max_shift``; what enters is background (0). ``max_shift=0`` returns the input."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return images
    batch, channels, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator).to(images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # (B, H): rows of the padded image
    columns = offsets[1, :, None] + torch.arange(width, device=images.device)  # (B, W)
    picked = padded.gather(2, rows[:, None, :, None].expand(batch, channels, height, padded.shape[3]))
    return picked.gather(3, columns[:, None, None, :].expand(batch, channels, height, width))
