"""The inference fast path: conv + eval-mode batch norm + ReLU as one cached convolution.

For ``relu(norm(conv(x)))`` with an eval-mode batch norm, the norm folds into
the convolution's weights and bias (``W * s``, ``(b - mean) * s + beta`` with
``s = gamma / sqrt(var + eps)``, one ``s`` per output channel, shared by its
``|G|`` copies in a group convolution so the bank keeps its group structure).
:class:`FusedConvReLU` runs that one convolution with the ReLU fused, on
channels-last maps, with oneDNN-prepacked weights where PyTorch has them. Same
outputs as the layer-by-layer path up to float rounding. Callers cache it, and the
expanded kernel banks, in :class:`InferenceCache` objects keyed on everything they
read (:func:`cache_key`: a batch norm by the values of its tensors, a weight by its
version counter and storage); weights edited in place through ``.data`` need
``clear_caches()`` (:class:`CachingModule`).
Nothing here knows about groups: :mod:`model.layers` and :mod:`model.networks`
use it for the G-CNN and the plain CNN alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CacheKey", "CachingModule", "FusedConvReLU", "InferenceCache", "cache_key", "fold_batch_norm"]

T = TypeVar("T")

# oneDNN's inference ops with prepacked weights and fused post-ops (the ones
# torch.compile's CPU backend uses); absent from builds without oneDNN.
_ONEDNN_FUSED = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
_MAX_PACKED_SHAPES = 16  # prepacked layouts depend on the input shape; keep a few


class CacheKey:
    """What a cached value was built from: :func:`cache_key` makes one per call, and the cache keeps
    :meth:`frozen` copies; a cached value is reused only while its stored key :meth:`matches` a fresh one."""

    __slots__ = ("compared", "facts", "watched")

    def __init__(self, facts: tuple, watched: tuple[torch.Tensor, ...], compared: tuple[torch.Tensor, ...]) -> None:
        self.facts = facts  # hashable: settings, each tensor's layout, the watched tensors' storage and version
        self.watched = watched
        self.compared = compared  # compared element by element

    def matches(self, other: CacheKey) -> bool:
        return self.facts == other.facts and all(map(torch.equal, self.compared, other.compared))

    def frozen(self) -> CacheKey:
        """The key to store: copies of the compared tensors, and the watched ones kept alive, so that
        no tensor allocated later can take their storage's address."""
        compared = tuple(tensor.detach().clone() for tensor in self.compared)
        return CacheKey(self.facts, tuple(tensor.detach() for tensor in self.watched), compared)


def cache_key(*items: torch.Tensor | nn.modules.batchnorm._BatchNorm | None) -> CacheKey:
    """What a cache of values derived from ``items`` is keyed on.

    - a batch norm's running statistics: their values (a few numbers per channel, compared on
      every call). The norm updates them in place without a version bump, whoever runs it (the
      norm alone in train mode while the network is in eval mode, ``F.batch_norm`` on them), so
      only their values tell; its ``eps`` too, and its affine parameters as below;
    - any other tensor: its version counter (bumped by every in-place update through the tensor:
      ``optimizer.step()``, ``load_state_dict``, ``p.mul_()`` under ``no_grad``), storage, dtype,
      device, shape and strides (``p.data = t``, ``model.double()``, ``model.to(device)``). The one
      edit this misses is in place through ``.data``: call :meth:`CachingModule.clear_caches` after
      it (the weights are too many to compare by value on every call);
    - an inference tensor (made in ``inference_mode``, which tracks no versions): its values.
    """
    facts: list[object] = []
    watched: list[torch.Tensor] = []
    compared: list[torch.Tensor] = []
    statistics: tuple[torch.Tensor | None, ...]
    parameters: tuple[torch.Tensor | None, ...]
    for item in items:
        if isinstance(item, nn.modules.batchnorm._BatchNorm):
            statistics, parameters = (item.running_mean, item.running_var), (item.weight, item.bias)
            facts.append(item.eps)
        else:
            statistics, parameters = (), (item,)
        for tensor in statistics:
            facts.append(tensor is None)
            if tensor is not None:
                compared.append(tensor)
        for tensor in parameters:
            if tensor is None:
                facts.append(None)
            elif tensor.is_inference():
                compared.append(tensor)
            else:
                watched.append(tensor)
                facts.append(
                    (tensor.dtype, tensor.device, tensor.shape, tensor.stride(), tensor.data_ptr(), tensor._version)
                )
    facts += [(tensor.dtype, tensor.device) for tensor in compared]  # torch.equal compares the shapes
    return CacheKey(tuple(facts), tuple(watched), tuple(compared))


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.modules.batchnorm._BatchNorm, repeats: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(O*repeats, ...)`` and bias of ``norm(conv(x, weight, bias))`` as one convolution.

    ``norm`` is an eval-mode batch norm over ``O`` channels; each of its channels
    scales ``repeats`` consecutive output channels of the convolution (the
    ``|G|`` copies of a group convolution's filter). Computed in float64.
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("folding needs a batch norm with running statistics (track_running_stats=True)")
    var, mean = norm.running_var.double(), norm.running_mean.double()
    gamma = torch.ones_like(var) if norm.weight is None else norm.weight.double()
    beta = torch.zeros_like(var) if norm.bias is None else norm.bias.double()
    scale = gamma / torch.sqrt(var + norm.eps)  # (O,)
    shift = beta - mean * scale
    conv_bias = torch.zeros_like(var) if bias is None else bias.double()
    scale_out = scale.repeat_interleave(repeats)  # (O*repeats,)
    folded_weight = weight.double() * scale_out.reshape(-1, *([1] * (weight.dim() - 1)))
    folded_bias = (conv_bias * scale + shift).repeat_interleave(repeats)
    return folded_weight.to(weight.dtype), folded_bias.to(weight.dtype)


class FusedConvReLU:
    """Inference-only ``relu(conv2d(x, weight, bias))`` with fixed weights.

    Float32 CPU inputs run oneDNN's convolution with the ReLU fused and the
    weights prepacked once per input shape (so no per-call weight reorder), and
    return channels-last maps; anything else falls back to ``F.conv2d``.
    Not an ``nn.Module``: it holds derived tensors, never parameters.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, *, stride: int, padding: int) -> None:
        self.weight = weight.contiguous(memory_format=torch.channels_last)  # (O, I, k, k)
        self.bias = bias
        self.stride, self.padding = stride, padding
        self._packed: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, I, H, W)`` -> ``(B, O, H', W')``."""
        if not (_ONEDNN_FUSED and x.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32):
            out = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
            return F.relu(out, inplace=True)
        padding, stride = [self.padding] * 2, [self.stride] * 2
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise(
            x, self._packed_weight(x.shape), self.bias, padding, stride, [1, 1], 1, "relu", [], ""
        )

    def _packed_weight(self, shape: torch.Size) -> torch.Tensor:
        key = tuple(shape)
        if key not in self._packed:
            if len(self._packed) >= _MAX_PACKED_SHAPES:
                del self._packed[next(iter(self._packed))]  # the oldest
            padding, stride = [self.padding] * 2, [self.stride] * 2
            self._packed[key] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, padding, stride, [1, 1], 1, list(key)
            )
        return self._packed[key]


class InferenceCache:
    """One derived value and the key it was built from; empty after a copy or
    pickle (oneDNN's packed tensors can be neither), rebuilt on next use."""

    def __init__(self) -> None:
        self.key: CacheKey | None = None
        self.value: Any = None

    def get(self, key: CacheKey, build: Callable[[], T]) -> T:
        """The cached value if ``key`` matches the one it was built from, else ``build()``'s.

        Built outside ``inference_mode`` (and without autograd), so that a value cached during an
        ``inference_mode`` forward can serve a later one with autograd on (input gradients of a
        frozen model): inference tensors cannot be saved for backward.
        """
        if self.value is None or self.key is None or not self.key.matches(key):
            self.clear()  # the old value's memory is free for the new one
            with torch.inference_mode(False), torch.no_grad():
                self.value, self.key = build(), key.frozen()
        return self.value  # type: ignore[no-any-return]

    def clear(self) -> None:
        self.key, self.value = None, None

    def __deepcopy__(self, memo: dict) -> InferenceCache:
        return InferenceCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]


class CachingModule(nn.Module):
    """A module whose submodules keep :class:`InferenceCache` attributes (or lists of them).

    Every switch between train and eval mode empties them (training reads no cache, so
    their memory is free); ``eval()`` on a module already in eval mode keeps them (evaluation
    code calls it before every batch). After editing weights in place through ``.data`` (as EMA or
    pruning code does), call :meth:`clear_caches`: such edits bump no version counter
    (see :func:`cache_key`).
    """

    def clear_caches(self) -> None:
        """Forget every derived tensor; the next eval-mode forward rebuilds what it needs."""
        for module in self.modules():
            for value in vars(module).values():
                caches = value if isinstance(value, list) else [value]
                for cache in caches:
                    if isinstance(cache, InferenceCache):
                        cache.clear()

    def train(self, mode: bool = True) -> CachingModule:
        if any(module.training != mode for module in self.modules()):
            self.clear_caches()
        return super().train(mode)
