"""Invariant gates on the joint head's pose coefficients: an orientation read by more than one linear map.

The joint head (:mod:`model.orientation`) reads each digit's pose profile from the Fourier coefficients
``Z_cm`` (over the element axis) of the per-element features ``z(c, g) = mean_x F(c, g, x)``, linearly:
``V_dm = sum_c W_dcm Z_cm``. One linear map has to serve every input: it cannot lean on a channel's
coefficient for one shape and away from it for another. :class:`PoseGate` multiplies each coefficient
by a complex number computed from what the input shows, before the head's map:

    V_dm = sum_c W_dcm G_cm Z_cm,    G_cm = 1 + g_cm(h),

``g`` a small MLP (one hidden ReLU layer, ``(Re, Im)`` out) of invariants ``h`` of the per-element
features: their mean and their maximum over the element axis, and the magnitudes ``|Z_cm|``,
standardised by a batch norm without affine part.

**Why the profile still turns with the input.** Turning the input by a group element ``r^k`` shifts
the element axis of ``z`` (exactly for the quarter turns on the pixel grid), which leaves the mean,
the maximum and every ``|Z_cm|`` as they were and multiplies ``Z_cm`` by ``e^{i m theta_k}``. The gate
is then the same complex number, and a product of complex numbers commutes: ``G Z`` turns as ``Z``
does, so ``l_d(theta)`` moves to ``l_d(theta - theta_k)`` as before (tests/model/test_pose_gate.py).
Mirrors would not commute with a complex gate: the joint head is for cyclic groups only.

The last layer starts at zero, so an untrained gate is 1 and the head is the linear one.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

__all__ = ["PoseGate", "gated_together"]

MAGNITUDE_FLOOR = 1e-12  # |Z| = sqrt(Re^2 + Im^2 + floor): a gradient everywhere, also where Z is 0


class PoseGate(nn.Module):
    """``(z (B, C, N), Z_re, Z_im (B, C, M))`` -> the gated coefficients ``(G Z)_re, (G Z)_im`` ``(B, C, M)``."""

    def __init__(self, channels: int, frequencies: int, hidden: int) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"the gate needs a hidden width >= 1, got {hidden!r}")
        self.channels, self.frequencies = channels, frequencies
        inputs = channels * (2 + frequencies)  # mean and max over the element axis, |Z_cm|
        self.norm = nn.BatchNorm1d(inputs, affine=False)
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, channels * frequencies * 2))
        out = cast(nn.Linear, self.mlp[2])
        nn.init.zeros_(out.weight)  # an untrained gate is 1: the linear head
        nn.init.zeros_(out.bias)

    def invariants(self, z: torch.Tensor, z_re: torch.Tensor, z_im: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, C (2 + M))``: unchanged when the element axis of ``z`` is shifted."""
        magnitude = torch.sqrt(z_re * z_re + z_im * z_im + MAGNITUDE_FLOOR)  # (B, C, M)
        return torch.cat([z.mean(dim=-1), z.amax(dim=-1), magnitude.flatten(1)], dim=1)

    def forward(self, z: torch.Tensor, z_re: torch.Tensor, z_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = self.mlp(self.norm(self.invariants(z, z_re, z_im)))  # (B, C M 2)
        return _gated(z_re, z_im, gate.unflatten(1, (self.channels, self.frequencies, 2)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, frequencies={self.frequencies}"


def gated_together(
    readers: nn.ModuleList, z: torch.Tensor, z_re: torch.Tensor, z_im: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What every :class:`PoseGate` of ``readers`` (in eval mode) makes of the same coefficients, at once:
    ``(G_r Z)_re, (G_r Z)_im`` ``(R, B, C, M)``, gate ``r``'s forward stacked, in a few batched products instead of one
    pass per gate (a head's readers, :class:`model.orientation.JointHead`). The invariants are the same for every
    gate; each standardises them by its own running statistics and applies its own MLP."""
    gates = [cast(PoseGate, gate) for gate in readers]
    first = gates[0]
    h = first.invariants(z, z_re, z_im)  # (B, F)
    mean = torch.stack([cast(torch.Tensor, gate.norm.running_mean) for gate in gates])[:, None]  # (R, 1, F)
    var = torch.stack([cast(torch.Tensor, gate.norm.running_var) for gate in gates])[:, None]
    x = (h - mean) / torch.sqrt(var + first.norm.eps)  # (R, B, F)
    hidden = [cast(nn.Linear, gate.mlp[0]) for gate in gates]
    out = [cast(nn.Linear, gate.mlp[2]) for gate in gates]
    x = torch.relu(
        torch.stack([layer.bias for layer in hidden])[:, None] + x @ torch.stack([layer.weight for layer in hidden]).mT
    )
    gate = torch.stack([layer.bias for layer in out])[:, None] + x @ torch.stack([layer.weight for layer in out]).mT
    return _gated(z_re, z_im, gate.unflatten(2, (first.channels, first.frequencies, 2)))  # (R, B, C, M)


def _gated(z_re: torch.Tensor, z_im: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``G Z`` (complex) with ``G = 1 + g``, ``g`` the MLP's output ``(..., C, M, 2)`` (Re, Im)."""
    g_re, g_im = 1.0 + gate[..., 0], gate[..., 1]
    return z_re * g_re - z_im * g_im, z_re * g_im + z_im * g_re
