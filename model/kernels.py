"""Kernel bases: how a stored filter is turned into its rotated and mirrored copies.

A filter is ``sum_k c_k psi_k`` over a basis of ``K`` functions ``psi_k`` on the
``k x k`` grid. A group element ``g`` transforms the filter by transforming the
basis, so each basis precomputes ``B[g, k] = g . psi_k`` once, shape
``(|G|, K, k, k)``, and layers expand their kernel banks with one einsum.

- :class:`GridBasis`: the ``k*k`` pixel deltas (a free ``k x k`` filter, as in
  Cohen & Welling's G-CNN). Quarter turns and mirrors permute the deltas exactly;
  other angles are bilinear, which blurs the rotated filter.
- :class:`HarmonicBasis`: steerable functions ``exp(-(r - rho)^2 / 2 s^2) *
  cos/sin(m phi)`` on rings ``rho = 0, 1, ..``, band-limited to ``m <= 2 rho``
  (at most ``max_frequency``). They are sampled at the exactly rotated points,
  so any angle is a true rotation of the continuous filter; quarter turns and
  mirrors still reduce to index permutations. Best for N > 4.
"""

from __future__ import annotations

import math

import torch

from model.groups import Group

__all__ = ["BASES", "GridBasis", "HarmonicBasis", "make_basis"]


class GridBasis:
    """Free ``k x k`` filters: the basis of pixel deltas (``K = k * k``)."""

    def __init__(self, kernel_size: int) -> None:
        _check_kernel_size(kernel_size)
        self.kernel_size = kernel_size
        self.size = kernel_size * kernel_size

    def transformed(self, group: Group) -> torch.Tensor:
        """``(|G|, K, k, k)``: every delta transformed by every element."""
        deltas = torch.eye(self.size, dtype=torch.float64).reshape(self.size, self.kernel_size, self.kernel_size)
        return torch.stack([group.transform_images(deltas, g) for g in group.elements()]).float()


class HarmonicBasis:
    """Band-limited circular harmonics on Gaussian rings, sampled on a ``k x k`` grid."""

    def __init__(self, kernel_size: int, *, ring_width: float = 0.5, max_frequency: int = 2) -> None:
        _check_kernel_size(kernel_size)
        self.kernel_size = kernel_size
        self.ring_width = ring_width
        # (ring radius, frequency, is_sine) for each basis function
        self.functions = [
            (float(rho), m, is_sine)
            for rho in range(kernel_size // 2 + 1)
            for m in range(min(2 * rho, max_frequency) + 1)
            for is_sine in ((False, True) if m > 0 else (False,))
        ]
        self.size = len(self.functions)
        self._norms = self._sample(0.0).flatten(1).norm(dim=1)  # (K,)

    def transformed(self, group: Group) -> torch.Tensor:
        """``(|G|, K, k, k)``: the basis rotated by every element, exact on quarter turns."""
        return torch.stack([self._element(group, g) for g in group.elements()]).float()

    def _element(self, group: Group, g: int) -> torch.Tensor:
        # Split the angle into quarter turns (an exact rot90) and a residual
        # in [-45, 45) degrees that is sampled analytically.
        degrees = group.degrees(g)
        quarters = math.floor((degrees + 45.0) / 90.0)
        residual = degrees - 90.0 * quarters
        # rotation(residual) * mirror = mirror * rotation(-residual): sample the
        # rotation, then mirror by flipping the array (exact, like quarter turns).
        mirrored = group.is_reflection(g)
        sampled = self._sample(-residual if mirrored else residual)
        sampled = torch.flip(sampled, dims=(-1,)) if mirrored else sampled
        return torch.rot90(sampled, k=quarters % 4, dims=(-2, -1)) / self._norms[:, None, None]

    def _sample(self, degrees: float) -> torch.Tensor:
        """``psi_k(R(-theta) x)`` on the grid: the basis rotated by ``degrees``."""
        half = self.kernel_size // 2
        coords = torch.arange(-half, half + 1, dtype=torch.float64)
        y, x = torch.meshgrid(-coords, coords, indexing="ij")  # row 0 is the top: y up
        theta = math.radians(degrees)
        cos, sin = (1.0, 0.0) if degrees == 0.0 else (math.cos(theta), math.sin(theta))
        src_x, src_y = cos * x + sin * y, -sin * x + cos * y  # R(-theta) x
        radius, phi = torch.hypot(src_x, src_y), torch.atan2(src_y, src_x)
        at_origin = radius < 1e-9
        functions = []
        for rho, m, is_sine in self.functions:
            ring = torch.exp(-((radius - rho) ** 2) / (2 * self.ring_width**2))
            angular = torch.sin(m * phi) if is_sine else torch.cos(m * phi)
            # A harmonic of frequency m > 0 has no well-defined value at the origin.
            functions.append(torch.where(at_origin & (m > 0), 0.0, ring * angular))
        return torch.stack(functions)  # (K, k, k)


BASES = {"grid": GridBasis, "harmonic": HarmonicBasis}


def make_basis(name: str, kernel_size: int) -> GridBasis | HarmonicBasis:
    """A kernel basis by name: ``"grid"`` or ``"harmonic"``."""
    if name not in BASES:
        raise ValueError(f"unknown kernel basis {name!r}; choose one of {sorted(BASES)}")
    return BASES[name](kernel_size)


def _check_kernel_size(kernel_size: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1 (a centre pixel to rotate about), got {kernel_size!r}")
