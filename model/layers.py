"""Group-equivariant layers: lifting and group convolutions, group pooling, normalisation.

Shapes: images are ``(B, C, H, W)``; group feature maps are ``(B, C, |G|, H, W)``
with the group axis ordered as in :mod:`model.groups`.

Both convolutions store one filter per (output, input[, input element]) and
expand it into a bank with one copy per group element ``g``:

- lifting:  ``K_g[o, i] = g . W[o, i]``                 -> conv2d with ``(O*|G|, I, k, k)``
- group:    ``K_g[o, i, h] = g . W[o, i, g^-1 h]``       -> conv2d with ``(O*|G|, I*|G|, k, k)``

so that ``layer(g . x) = g . layer(x)`` (Cohen & Welling, 2016). With ``band_limit=L``
(cyclic groups) the features are functions on the circle of frequency ``0..L`` sampled at the
group's angles (:mod:`model.fourier`): a group convolution stores ``W[o, i]`` as ``2L + 1`` Fourier
coefficients over its input element instead of ``|G|`` samples, and both convolutions project their
output's group axis onto the band (folded into the bank), so that every layer's output is a feature
of SO(2) whose group axis a turn by any angle moves exactly (:func:`model.fourier.turn`; the pixel grid
still approximates the spatial turn). In eval mode
without autograd the expanded bank is cached and rebuilt when the stored weights
change (:func:`model.fusion.cache_key`: every in-place update through the tensor,
such as ``optimizer.step()`` or ``load_state_dict``), on every train/eval switch,
and on ``clear_caches()`` (after edits through ``.data``).

Inference fast path (``forward_fused``, used by :mod:`model.networks`): the
eval-mode batch norm that follows a convolution is folded into the cached bank
and run with the ReLU as one convolution (:mod:`model.fusion`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.fourier import check_band_limit, coefficient_count, projection, synthesis
from model.fusion import CachingModule, FusedConvReLU, InferenceCache, cache_key, fold_batch_norm
from model.groups import Group
from model.kernels import make_basis

__all__ = ["GroupBatchNorm", "GroupConv2d", "GroupPool", "LiftingConv2d"]


class _ExpandedConv2d(CachingModule):
    """Shared machinery of the lifting and group convolutions (signature of ``nn.Conv2d``)."""

    lifts: bool  # True: the input is an image; False: a group feature map
    basis: torch.Tensor  # buffers, annotated for type checkers
    regular_permutations: torch.Tensor
    band: torch.Tensor
    synthesis: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        group: Group,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        basis: str = "grid",
        band_limit: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got {padding!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.group, self.stride, self.padding, self.basis_name = group, stride, padding, basis
        self.in_group_size = in_group_size = 1 if self.lifts else group.order
        self.band_limit = band_limit
        # what the stored weight holds per input channel: 1 (an image), |G| samples, or 2L + 1 coefficients
        stored_group_size = in_group_size
        if band_limit:
            if group.reflections:
                raise ValueError(f"band_limit needs a cyclic group C_N, got {group.name}")
            check_band_limit(group.order, band_limit)
            self.register_buffer("band", projection(group.order, band_limit), persistent=False)  # (|G|, |G|)
            if not self.lifts:
                self.register_buffer("synthesis", synthesis(group.order, band_limit), persistent=False)
                stored_group_size = coefficient_count(band_limit)
        self.cache_kernels = True
        kernel_basis = make_basis(basis, kernel_size)
        self.register_buffer("basis", kernel_basis.transformed(group), persistent=False)  # (|G|, K, k, k)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, stored_group_size, kernel_basis.size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # He initialisation: each basis function has unit norm, so the filter
        # energy per input channel is K * var(c).
        # (the synthesis of band-limited weights keeps their energy: its columns are orthonormal)
        fan_in = in_channels * stored_group_size * kernel_basis.size
        nn.init.normal_(self.weight, std=(2.0 / fan_in) ** 0.5)
        self._bank, self._bias_bank, self._fused = InferenceCache(), InferenceCache(), InferenceCache()
        if not self.lifts:
            self.register_buffer("regular_permutations", group.regular_permutations.clone(), persistent=False)

    def _group_indexed_weight(self) -> torch.Tensor:
        """The stored weight arranged per output element: ``(O, I, |G|, N_in, K)``."""
        raise NotImplementedError

    def expand_kernel(self) -> torch.Tensor:
        """The full bank ``(O*|G|, I*N_in, k, k)`` for ``F.conv2d``."""
        weight = self._group_indexed_weight()  # (O, I, G, N_in, K)
        bank = torch.einsum("oignk,gkyx->oginyx", weight, self.basis)  # (O, G, I, N_in, k, k)
        if self.band_limit:  # the output's group axis projected onto the band 0..L
            bank = torch.einsum("gh,ohinyx->oginyx", self.band, bank)
        size = self.kernel_size
        return bank.reshape(self.out_channels * self.group.order, self.in_channels * self.in_group_size, size, size)

    def kernel(self) -> torch.Tensor:
        """The expanded bank, from the cache when that is safe and still valid."""
        if self.training or not self.cache_kernels or (torch.is_grad_enabled() and self.weight.requires_grad):
            self._bank.clear()
            return self.expand_kernel()
        return self._bank.get(cache_key(self.weight, self.basis), self.expand_kernel)

    def expanded_bias(self) -> torch.Tensor | None:
        """The bias per output channel of the bank, ``(O*|G|,)``; cached like the bank."""
        if self.bias is None:
            return None
        bias = self.bias
        if self.training or torch.is_grad_enabled():
            return bias.repeat_interleave(self.group.order)
        return self._bias_bank.get(cache_key(bias), lambda: bias.repeat_interleave(self.group.order))

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, I*N_in, H, W)`` -> ``(B, O, |G|, H', W')``."""
        out = F.conv2d(x, self.kernel(), self.expanded_bias(), stride=self.stride, padding=self.padding)
        return out.unflatten(1, (self.out_channels, self.group.order))

    def forward_fused(self, x: torch.Tensor, norm: GroupBatchNorm) -> torch.Tensor:
        """``relu(norm(self(x)))`` for inference (no autograd), on flat maps:
        ``(B, I*N_in, H, W)`` -> ``(B, O*|G|, H', W')`` (channels-last), with
        the eval-mode ``norm`` folded into the bank (see the module docstring). This
        layer's own mode does not matter: a convolution computes the same in both."""
        if torch.is_grad_enabled() or norm.training:
            raise RuntimeError("forward_fused is for inference: an eval-mode batch norm and no autograd")
        if x.dim() != 4 or x.shape[1] != self.in_channels * self.in_group_size:
            raise ValueError(f"expected (B, {self.in_channels * self.in_group_size}, H, W), got {tuple(x.shape)}")
        if not self.cache_kernels:
            self._fused.clear()
            return self._build_fused(norm)(x)
        return self._fused.get(cache_key(self.weight, self.bias, self.basis, norm), lambda: self._build_fused(norm))(x)

    def _build_fused(self, norm: GroupBatchNorm) -> FusedConvReLU:
        weight, bias = fold_batch_norm(self.kernel(), self.bias, norm, repeats=self.group.order)
        return FusedConvReLU(weight, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, group={self.group.name}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, basis={self.basis_name}"
            + (f", band_limit={self.band_limit}" if self.band_limit else "")
        )


class LiftingConv2d(_ExpandedConv2d):
    """Image ``(B, I, H, W)`` -> group feature map ``(B, O, |G|, H', W')``."""

    lifts = True

    def _group_indexed_weight(self) -> torch.Tensor:
        out_ch, in_ch, _, size = self.weight.shape
        return self.weight.unsqueeze(2).expand(out_ch, in_ch, self.group.order, 1, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self._convolve(x)


class GroupConv2d(_ExpandedConv2d):
    """Group feature map ``(B, I, |G|, H, W)`` -> ``(B, O, |G|, H', W')``."""

    lifts = False

    def _group_indexed_weight(self) -> torch.Tensor:
        # weight[o, i, perm[g, h]] = W[o, i, g^-1 h]; band-limited: W sampled from its coefficients first
        weight: torch.Tensor = self.weight
        if self.band_limit:
            weight = torch.einsum("oifk,hf->oihk", weight, self.synthesis)  # (O, I, G, K)
        return weight[:, :, self.regular_permutations]  # (O, I, G, G, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.group.order:
            raise ValueError(f"expected (B, {self.in_channels}, {self.group.order}, H, W), got {tuple(x.shape)}")
        return self._convolve(x.flatten(1, 2))


class GroupPool(nn.Module):
    """Pool over the group axis: ``(B, C, |G|, H, W)`` -> invariant ``(B, C, H, W)``."""

    def __init__(self, mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=2) if self.mode == "max" else x.mean(dim=2)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class GroupBatchNorm(nn.BatchNorm3d):
    """Batch normalisation of ``(B, C, |G|, H, W)`` with statistics and affine
    parameters shared across the group axis and space (one per channel), which
    keeps it equivariant: the group only permutes what one channel's statistics
    pool over."""
