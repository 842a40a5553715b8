"""Test-time orbit averaging: a network read on several turned copies of its input.

``OrbitAverage(model, (0.0, 22.5))`` answers ``log mean_k p(digit | R(theta_k) x)``: the input and the
input turned by 22.5° (bilinear, :func:`model.rotation.rotate`), so a C8 network's eight exact-ish
turns become sixteen. It costs one forward pass per copy. The issue on equivariance between the grid's
quarter turns uses it as the baseline that an architecture must beat at no more FLOPs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.rotation import rotate

__all__ = ["OrbitAverage"]


class OrbitAverage(nn.Module):
    """``(B, C, H, W)`` -> log-probabilities ``(B, classes)`` averaged over turned copies of the input."""

    def __init__(self, model: nn.Module, degrees: tuple[float, ...] = (0.0, 22.5)) -> None:
        super().__init__()
        if not degrees:
            raise ValueError("degrees must name at least one turn")
        self.model, self.degrees = model, tuple(float(angle) for angle in degrees)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        copies = torch.stack([F.log_softmax(self.model(rotate(x, angle)), dim=1) for angle in self.degrees])
        return torch.logsumexp(copies, dim=0) - math.log(len(self.degrees))  # (B, classes)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}"
