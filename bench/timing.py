"""Small timing and FLOP-counting helpers shared by the benchmarks.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which
sees every ATen op whatever module path produced it. It counts 2 FLOPs per
multiply-add of convolutions (``aten.convolution`` and its backward) and matrix
products (``mm``, ``addmm``, ``bmm``: the linear head and, when they run, kernel
expansions); bias adds, batch norm, ReLU, pooling and means are not counted.
oneDNN's fused inference convolution (``mkldnn::_convolution_pointwise``, see
:class:`model.fusion.FusedConvReLU`) is counted like ``aten.convolution``.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, register_flop_formula

from model.layers import GroupConv2d, LiftingConv2d

__all__ = ["Timing", "count_flops", "matmul_gflops", "set_kernel_cache", "time_calls", "train_step"]


if hasattr(torch.ops.mkldnn, "_convolution_pointwise"):

    @register_flop_formula(torch.ops.mkldnn._convolution_pointwise)
    def _fused_conv_flops(
        x_shape: list[int], w_shape: list[int], *args: object, out_shape: list[int], **kwargs: object
    ) -> int:
        return conv_flop_count(x_shape, w_shape, out_shape)


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, in seconds."""

    median: float
    p10: float
    p90: float
    runs: int

    @property
    def spread(self) -> float:
        """``(p90 - p10) / median``: how noisy the runs were."""
        return (self.p90 - self.p10) / self.median


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 3) -> Timing:
    """Time ``runs`` calls of ``fn()`` after ``warmup`` untimed ones."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs!r}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    if runs == 1:
        return Timing(times[0], times[0], times[0], 1)
    deciles = statistics.quantiles(times, n=10, method="inclusive")
    return Timing(statistics.median(times), deciles[0], deciles[-1], runs)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (convolutions and matrix products, see the module docstring)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_gflops(sizes: tuple[int, ...] = (1024, 2048), runs: int = 10) -> float:
    """The machine's fp32 matrix-multiply rate: best median GFLOP/s of square ``torch.mm`` over ``sizes``."""
    best = 0.0
    generator = torch.Generator().manual_seed(0)
    for n in sizes:
        a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
        out = torch.empty(n, n)
        timing = time_calls(functools.partial(torch.mm, a, b, out=out), runs)
        best = max(best, 2 * n**3 / timing.median / 1e9)
    return best


def set_kernel_cache(model: nn.Module, enabled: bool) -> None:
    """Turn the eval-mode kernel-bank cache of every equivariant layer on or off."""
    for module in model.modules():
        if isinstance(module, (LiftingConv2d, GroupConv2d)):
            module.cache_kernels = enabled


def train_step(model: nn.Module, batch: int) -> Callable[[], None]:
    """One training step of ``model`` (train mode): forward, cross-entropy backward, AdamW, on fixed random data."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 1, 28, 28, generator=generator), torch.randint(0, 10, (batch,), generator=generator)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step
