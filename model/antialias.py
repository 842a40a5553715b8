"""Subsampling without aliasing, and nonlinearities by name: what keeps features turning with the input
between the grid's quarter turns.

A 2x2 max pool at stride 2 keeps one value in four: the map it leaves aliases every frequency above
half its new sampling rate, so a digit turned by 45° lands on a different set of samples than the
upright one, and the pooled features differ by more than a turn (the equivariance probe of
``python -m model.equivariance`` shows the error jumping where the maps shrink to 7x7).
:func:`blur_pool` is Zhang's anti-aliased max pool (*Making Convolutional Networks Shift-Invariant
Again*, 2019): a 2x2 max at stride 1, then a 3x3 binomial low-pass sampled at stride 2.
:func:`low_pass_pool` keeps no maximum at all: a 2x2 mean at stride 1, then the same binomial at stride
2 (away from the border, the separable 4x4 binomial ``[1, 3, 3, 1] / 8``). A local maximum is not equivariant between
quarter turns: it answers to its window's shape, which turns with the grid, not with the digit (measured
on the trained ``gcnn_c8_blur``'s first layer, 200 test digits, the relative error of the invariant
descriptor of ``model.equivariance`` at 45°: 0.008 before any subsampling, 0.023 after the 2x2 max pool,
0.022 after :func:`blur_pool`, 0.012 after :func:`low_pass_pool`).

Both stages are symmetric about the map's centre (the 2x2 windows of an ``n x n`` map centre at
``(n - 1) / 2``, the binomial is D_4-symmetric and its stride-2 samples of the ``(n - 1)``-wide map
are mirror images of each other when ``n`` is even), so quarter turns and mirrors stay exact,
as with the plain 2x2 pool, on maps of even size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ACTIVATIONS",
    "SUBSAMPLINGS",
    "activation",
    "binomial_kernel",
    "blur_pool",
    "low_pass_pool",
    "max_2x2",
    "subsample",
]

ACTIVATIONS = ("relu", "elu", "softplus")
SUBSAMPLINGS = ("max", "blur", "low_pass")


def binomial_kernel(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalised 3x3 binomial low-pass ``[1, 2, 1]^T [1, 2, 1] / 16``, ``(1, 1, 3, 3)``."""
    line = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    return (line[:, None] * line[None, :] / 16.0).to(dtype)[None, None]


def blur_pool(x: torch.Tensor) -> torch.Tensor:
    """Anti-aliased 2x subsampling of ``(B, C, H, W)`` maps (H, W even) -> ``(B, C, H/2, W/2)``."""
    _check_even(x, "blur_pool")
    peaks = F.max_pool2d(x, 2, stride=1) if x.requires_grad else max_2x2(x)  # the faster of the two for each use
    return _binomial_stride_2(peaks)  # windows centred on the map's centre


def max_2x2(x: torch.Tensor) -> torch.Tensor:
    """The maximum of every 2x2 window at stride 1, ``(..., H, W)`` -> ``(..., H-1, W-1)``: ``F.max_pool2d(x, 2,
    stride=1)`` to the last bit, taken as the maximum of neighbouring rows, then of neighbouring columns.

    torch's max pool at stride 1 has no fast CPU kernel: with this in its place ``python -m bench.speed`` timed
    ``gcnn_c8_canon_pose``'s forward at 2.34 ms instead of 2.57 ms at batch 1 and 781 instead of 675 images/s at
    batch 256. Its backward is the slower one (the batch-64 training step took 339 ms against 253 ms), so
    :func:`blur_pool` takes it only where no gradient is asked for (inference, evaluation); docs/performance.md."""
    rows = torch.maximum(x[..., :-1, :], x[..., 1:, :])  # (..., H-1, W)
    return torch.maximum(rows[..., :-1], rows[..., 1:])  # (..., H-1, W-1)


def low_pass_pool(x: torch.Tensor) -> torch.Tensor:
    """Linear 2x subsampling of ``(B, C, H, W)`` maps (H, W even) -> ``(B, C, H/2, W/2)``: the 4x4 binomial
    low-pass at stride 2 (a 2x2 mean at stride 1, then :func:`binomial_kernel` at stride 2)."""
    _check_even(x, "low_pass_pool")
    return _binomial_stride_2(F.avg_pool2d(x, 2, stride=1))


def _check_even(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"{name} expects (B, C, H, W) with H and W even, got {tuple(x.shape)}")


def _binomial_stride_2(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H-1, W-1)`` -> ``(B, C, H/2, W/2)``: each channel's :func:`binomial_kernel` sampled at stride 2."""
    kernel = binomial_kernel(x.dtype).to(x.device).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, kernel, stride=2, padding=1, groups=x.shape[1])


def subsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """2x spatial subsampling of ``(B, C, H, W)``: ``"max"`` (2x2 max pool), ``"blur"`` (:func:`blur_pool`)
    or ``"low_pass"`` (:func:`low_pass_pool`)."""
    if mode == "max":
        return F.max_pool2d(x, 2)
    if mode == "blur":
        return blur_pool(x)
    if mode == "low_pass":
        return low_pass_pool(x)
    raise ValueError(f"subsample must be one of {SUBSAMPLINGS}, got {mode!r}")


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """A pointwise nonlinearity by config name; pointwise, so it commutes with every permutation of the
    group axis and every turn of the plane. ``elu`` and ``softplus`` are smooth: they create fewer high
    spatial frequencies than ReLU's kink, which a coarse map then aliases."""
    if name == "relu":
        return F.relu(x)
    if name == "elu":
        return F.elu(x)
    if name == "softplus":
        return F.softplus(x)
    raise ValueError(f"nonlinearity must be one of {ACTIVATIONS}, got {name!r}")
