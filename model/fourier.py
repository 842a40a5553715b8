"""Band-limited features on the circle: the irreducible representations of SO(2), sampled at N angles.

A feature of a C_N network is a function on the N angles ``theta_h = 2 pi h / N`` (the group axis,
:mod:`model.groups`). A turn by a multiple of ``2 pi / N`` shifts those samples exactly; a turn by any
other angle does not map them onto each other, so a plain C_N network is equivariant only on its grid
of angles. A function on the circle whose Fourier series stops at frequency ``L``,

    f(theta) = a_0 + sum_{m=1..L} a_m cos(m theta) + b_m sin(m theta),

is a vector in the sum of SO(2)'s irreducible representations of frequency ``0..L`` (one of dimension
1, then ``L`` of dimension 2), and a turn by *any* angle ``phi`` acts on it exactly: each pair
``(a_m, b_m)`` rotates by ``m phi``. When ``2 L < N`` its N samples hold it without loss, so a C_N
network whose features are band-limited this way carries features of SO(2) (escnn's regular
C_N fields restricted to the irreps ``0..L``; the pointwise nonlinearity acts on the N samples and the
next layer reads only the band back, as escnn's ``FourierPointwise`` does).

- :func:`synthesis`: the ``(N, 2L + 1)`` matrix whose orthonormal columns are the sampled harmonics
  ``1, cos theta, sin theta, .., cos L theta, sin L theta``: coefficients -> samples; its transpose is
  the analysis, samples -> coefficients.
- :func:`projection`: ``S S^T``, the ``(N, N)`` low-pass onto the band; circulant, so it commutes
  with every shift of the group axis (quarter turns stay exact).
- :func:`turn`: the samples of a band-limited feature turned by any angle, the exact action that a
  network's features should follow when its input turns between grid angles (tests, measurements).
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_band_limit", "coefficient_count", "projection", "synthesis", "turn"]


def check_band_limit(samples: int, band_limit: int) -> None:
    """``1 <= L`` and ``2 L < N``: the N samples of a band-limited function hold it and the products of two
    of them (what a group convolution sums over the group axis) without aliasing."""
    if not isinstance(band_limit, int) or band_limit < 1 or 2 * band_limit >= samples:
        most = (samples - 1) // 2
        raise ValueError(f"band_limit must be an int in 1..{most} for {samples} angles, got {band_limit!r}")


def coefficient_count(band_limit: int) -> int:
    """``2 L + 1``: one coefficient for frequency 0, two (cos, sin) for each of ``1..L``."""
    return 2 * band_limit + 1


def synthesis(samples: int, band_limit: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``S`` ``(N, 2L + 1)``: column ``j`` is a harmonic sampled at ``theta_h = 2 pi h / N``, scaled so that
    ``S^T S = I`` (frequency 0 by ``1/sqrt(N)``, the others by ``sqrt(2/N)``)."""
    check_band_limit(samples, band_limit)
    return _harmonics(samples, band_limit, 0.0).to(dtype)


def projection(samples: int, band_limit: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``P = S S^T`` ``(N, N)``: the orthogonal projection of N samples onto the band ``0..L``."""
    basis = synthesis(samples, band_limit, torch.float64)
    return (basis @ basis.T).to(dtype)


def turn(features: torch.Tensor, degrees: float, band_limit: int, dim: int = 2) -> torch.Tensor:
    """The band-limited part of ``features`` (group axis ``dim``, N samples) turned by ``degrees``
    counter-clockwise: ``f'(theta) = f(theta - phi)``, each frequency-m pair rotated by ``m phi``."""
    samples = features.shape[dim]
    analysis = synthesis(samples, band_limit, torch.float64).T  # samples -> coefficients
    operator = _harmonics(samples, band_limit, math.radians(degrees)) @ analysis  # (N, N)
    moved = features.movedim(dim, -1) @ operator.T.to(features.dtype).to(features.device)
    return moved.movedim(-1, dim)


def _harmonics(samples: int, band_limit: int, phi: float) -> torch.Tensor:
    """The orthonormal harmonics of :func:`synthesis` at ``theta_h - phi``, float64 ``(N, 2L + 1)``."""
    theta = 2 * math.pi * torch.arange(samples, dtype=torch.float64) / samples - phi
    scale = math.sqrt(2.0 / samples)
    columns = [torch.full((samples,), 1.0 / math.sqrt(samples), dtype=torch.float64)]
    for m in range(1, band_limit + 1):
        columns += [scale * torch.cos(m * theta), scale * torch.sin(m * theta)]
    return torch.stack(columns, dim=1)
