"""The two networks the project compares, built from typed configs.

``GroupEquivariantCNN``: a lifting convolution, ``num_hidden`` group
convolutions (each followed by group batch norm + ReLU, optionally by 2x2
spatial max pooling), then an invariant projection (pool over the group axis,
average over space) and a linear classifier. Its logits are invariant to every
element of its group, exactly for quarter turns and mirrors when every pooled
map has an even size.

With ``band_limit=L`` every feature is a function of frequency ``0..L`` on the group's angles, a
feature of SO(2) (:mod:`model.fourier`).

With ``canonicalize=True`` every input is first turned to its own principal axis (:mod:`model.canonical`),
so the logits are invariant, up to interpolation, to turns by any angle.

``BaselineCNN``: the same design with plain ``Conv2d`` layers, no symmetry.

Both run inference (eval mode, autograd off) through a fused path: each
conv + batch norm + ReLU is one cached convolution on channels-last maps (see
:class:`model.fusion.FusedConvReLU`); the G-CNN pools space on ``(B, C*|G|, H, W)``
views. Same outputs as the layer-by-layer path up to float rounding.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from model.antialias import ACTIVATIONS, SUBSAMPLINGS, activation, subsample
from model.canonical import canonicalize
from model.fusion import CachingModule, FusedConvReLU, InferenceCache, cache_key, fold_batch_norm
from model.groups import Group, get_group
from model.layers import GroupBatchNorm, GroupConv2d, GroupPool, LiftingConv2d
from model.orientation import JointHead, Pose, shifted_profile
from model.serving import Prediction

__all__ = [
    "BaselineCNN",
    "CNNConfig",
    "GCNNConfig",
    "GroupEquivariantCNN",
    "blurred",
    "config_from_dict",
    "gaussian_kernel",
]


@dataclass(frozen=True)
class CNNConfig:
    """A plain CNN: ``1 + num_hidden`` convolutions of width ``hidden_channels``."""

    in_channels: int = 1
    out_channels: int = 10
    kernel_size: int = 5
    num_hidden: int = 4
    hidden_channels: int = 32
    padding: int = 0
    pool_after: tuple[int, ...] = field(default_factory=tuple)  # conv indices (0 = first) followed by 2x2 max pooling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GCNNConfig(CNNConfig):
    """A G-CNN: the CNN's layout on group feature maps of ``group``."""

    hidden_channels: int = 16
    group: str = "C4"
    basis: str = "grid"  # kernel basis, see model.kernels
    group_pool: str = "mean"  # "mean" or "max" over the group axis before averaging over space
    head: str = "invariant"  # "invariant": pool the group axis; "joint": (digit, element) scores, see model.orientation
    pose_frequencies: int = 2  # joint head only: the band limit of the pose profile
    pose_trains_features: bool = True  # joint head only: whether the pose loss trains the convolutions too
    pose_gate: int = 0  # joint head only: hidden width of invariant gates on its pose (model.pose_gate); 0: none
    pose_pool: str = "mean"  # joint head only: how its pose pools space, "mean" or "mean_max" (JointHead.per_element)
    pose_readers: int = 1  # joint head only: how many pose maps (each with its gates) are averaged (JointHead)
    input_blur: float = 0.0  # sigma (pixels) of an isotropic Gaussian applied to the input; 0: none
    subsample: str = "max"  # how pool_after halves the maps: "max" (2x2 pool), "blur", "low_pass" (model.antialias)
    nonlinearity: str = "relu"  # "relu", or a smooth "elu" / "softplus" (see model.antialias)
    band_limit: int = 0  # > 0: features of SO(2), frequencies 0..band_limit on the group's angles (model.fourier)
    canonicalize: bool = False  # turn each input to its own principal axis first (model.canonical)
    canonical_centred: bool = False  # canonicalize only: turn about the centre of mass, landing on the image centre


def config_from_dict(config_type: type[CNNConfig], values: dict[str, Any]) -> CNNConfig:
    """Rebuild a config from its JSON form (lists back to tuples, unknown keys rejected)."""
    known = {f.name for f in fields(config_type)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {config_type.__name__} fields: {sorted(unknown)}")
    cleaned: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    return config_type(**cleaned)


class BaselineCNN(CachingModule):
    """Plain CNN classifier: ``(B, C, H, W)`` -> logits ``(B, out_channels)``.

    Served through :class:`model.serving.ServingModel`: no group, no pose.
    """

    group: Group | None = None  # no symmetry
    has_pose = False

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.in_channels] + [config.hidden_channels] * (config.num_hidden + 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, config.kernel_size, padding=config.padding)
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for width in widths[1:])
        self.head = nn.Linear(config.hidden_channels, config.out_channels)
        self._fused = [InferenceCache() for _ in self.convs]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if can_fuse(self, self.norms):
            return self._forward_features_fused(x)
        return self.layer_outputs(x)[-1]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output ``(B, C, H, W)`` (conv, norm, ReLU, pooling), on the layer-by-layer path."""
        outputs = []
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = F.relu(norm(conv(x)))  # (B, C, H, W)
            if index in self.config.pool_after:
                x = F.max_pool2d(x, 2)
            outputs.append(x)
        return outputs

    def _forward_features_fused(self, x: torch.Tensor) -> torch.Tensor:
        for index, cache in enumerate(self._fused):
            conv, norm = cast(nn.Conv2d, self.convs[index]), cast(nn.BatchNorm2d, self.norms[index])
            fused = cache.get(cache_key(conv.weight, conv.bias, norm), functools.partial(_fuse_conv2d, conv, norm))
            x = fused(x)  # (B, C, H, W): relu(norm(conv(x)))
            if index in self.config.pool_after:
                x = F.max_pool2d(x, 2)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(-2, -1)))  # (B, C) -> (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def predict(self, images: torch.Tensor) -> Prediction:
        """Softmax of the logits, no pose (:class:`model.serving.ServingModel`)."""
        return Prediction(torch.softmax(self(images), dim=1), None)


class GroupEquivariantCNN(CachingModule):
    """G-CNN classifier: ``(B, C, H, W)`` -> group-invariant logits ``(B, out_channels)``.

    Served through :class:`model.serving.ServingModel`: its group, and a pose when its head is joint.
    """

    blur: torch.Tensor  # buffer, annotated for type checkers

    def __init__(self, config: GCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.group = get_group(config.group)
        group, size, width = self.group, config.kernel_size, config.hidden_channels
        layer_options: dict[str, Any] = dict(basis=config.basis, band_limit=config.band_limit)
        convs: list[nn.Module] = [
            LiftingConv2d(config.in_channels, width, size, group=group, padding=config.padding, **layer_options)
        ]
        convs += [
            GroupConv2d(width, width, size, group=group, padding=config.padding, **layer_options)
            for _ in range(config.num_hidden)
        ]
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(GroupBatchNorm(width) for _ in self.convs)
        self.register_buffer("blur", gaussian_kernel(config.input_blur), persistent=False)  # (1, 1, k, k)
        if config.head not in ("invariant", "joint"):
            raise ValueError(f"head must be 'invariant' or 'joint', got {config.head!r}")
        if config.subsample not in SUBSAMPLINGS or config.nonlinearity not in ACTIVATIONS:
            raise ValueError(f"subsample must be one of {SUBSAMPLINGS} and nonlinearity one of {ACTIVATIONS}")
        if config.canonicalize and self.group.rotations % 2:
            raise ValueError(f"canonicalize needs a group with the half turn (C_N or D_N, N even), got {config.group}")
        if config.canonical_centred and not config.canonicalize:
            raise ValueError("canonical_centred is an option of canonicalize, which is off")
        self.group_pool = GroupPool(config.group_pool)
        self.head: nn.Module = (
            JointHead(
                width,
                config.out_channels,
                group,
                config.pose_frequencies,
                pose_trains_features=config.pose_trains_features,
                gate=config.pose_gate,
                pool=config.pose_pool,
                readers=config.pose_readers,
            )
            if config.head == "joint"
            else nn.Linear(width, config.out_channels)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Equivariant features ``(B, C, |G|, H', W')`` (of the input turned to its own axis, with
        ``config.canonicalize``)."""
        return self.canonical_features(x)[0]

    def canonical_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward_features` and the turn ``(B,)`` in degrees each input was read at (``None`` without
        ``config.canonicalize``)."""
        x, turn = self.canonical_input(x)
        return self._features(x), turn

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.low_pass(x)
        if can_fuse(self, self.norms) and self.config.nonlinearity == "relu":
            return self._forward_features_fused(x)
        return self.layer_outputs(x)[-1]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output ``(B, C, |G|, H, W)`` (conv, norm, nonlinearity, pooling), on the
        layer-by-layer path; ``x`` is the input after :meth:`canonical_input` and :meth:`low_pass`."""
        outputs = []
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = activation(norm(conv(x)), self.config.nonlinearity)  # (B, C, G, H, W)
            if index in self.config.pool_after:  # space only, never the group axis
                x = subsample(x.flatten(1, 2), self.config.subsample).unflatten(1, x.shape[1:3])
            outputs.append(x)
        return outputs

    def canonical_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With ``config.canonicalize``, the input turned to its own principal axis and the turn ``(B,)`` in
        degrees (:mod:`model.canonical`); else the input as it is and ``None``."""
        return canonicalize(x, self.config.canonical_centred) if self.config.canonicalize else (x, None)

    def low_pass(self, x: torch.Tensor) -> torch.Tensor:
        """The input blurred by ``config.input_blur`` (each channel alone; symmetric, so equivariant to D_4)."""
        if self.blur.shape[-1] == 1:
            return x
        if x.dim() != 4:
            raise ValueError(f"expected (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        return blurred(x, self.blur)

    def _forward_features_fused(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            conv, norm = cast(LiftingConv2d | GroupConv2d, conv), cast(GroupBatchNorm, norm)
            x = conv.forward_fused(x, norm)  # (B, C*G, H, W), channels-last: relu(norm(conv(x)))
            if index in self.config.pool_after:
                x = subsample(x, self.config.subsample)  # space only: the group axis is folded into channels
        return x.unflatten(1, (self.config.hidden_channels, self.group.order))  # (B, C, G, H, W)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Invariant digit logits ``(B, classes)`` from features ``(B, C, G, H, W)``."""
        if isinstance(self.head, JointHead):
            return self.head.digit_and_pose(x)[0]  # p(d) = softmax of the invariant logits
        invariant = self.group_pool(x).mean(dim=(-2, -1))  # (B, C, G, H, W) -> (B, C)
        return self.head(invariant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_joint(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(digit, element)`` ``(B, classes, |G|)`` of a ``head="joint"`` network (see
        :mod:`model.orientation`); it moves along the element axis as the input turns."""
        return self._joint_head().scores(*self._digit_and_pose(x))

    def forward_pose(self, x: torch.Tensor) -> Pose:
        """The joint distribution of digit and continuous angle, :class:`model.orientation.Pose`."""
        return Pose.from_head(*self._digit_and_pose(x), self.group)

    def _digit_and_pose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint head's digit logits and pose coefficients for the input as it came: a canonicalising
        network reads the input turned by ``tau``, so its profile is shifted back by ``tau``."""
        features, turn = self.canonical_features(x)
        digits, coefficients = self._joint_head().digit_and_pose(features)
        return digits, (coefficients if turn is None else shifted_profile(coefficients, turn))

    @property
    def has_pose(self) -> bool:
        """Whether the head is joint (digit, rotation): :meth:`predict` then answers a pose."""
        return isinstance(self.head, JointHead)

    def predict(self, images: torch.Tensor) -> Prediction:
        """``p(d)`` and, with a joint head, the :class:`~model.orientation.Pose` it is the marginal of
        (:class:`model.serving.ServingModel`)."""
        if not self.has_pose:
            return Prediction(torch.softmax(self(images), dim=1), None)
        pose = self.forward_pose(images)
        return Prediction(pose.digit_probabilities.float(), pose)

    def _joint_head(self) -> JointHead:
        if not isinstance(self.head, JointHead):
            raise ValueError("this network has no orientation: it was built with head='invariant'")
        return self.head


def blurred(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` maps convolved with the ``(1, 1, k, k)`` ``kernel``, each channel alone, zero padding
    (same size)."""
    channels = x.shape[1]
    return F.conv2d(x, kernel.to(x.dtype).expand(channels, 1, -1, -1), padding=kernel.shape[-1] // 2, groups=channels)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised isotropic Gaussian ``(1, 1, k, k)``, ``k = 2 ceil(2.5 sigma) + 1``; ``(1, 1, 1, 1)`` of 1 for 0."""
    if sigma < 0:
        raise ValueError(f"input_blur must be >= 0, got {sigma!r}")
    radius = math.ceil(2.5 * sigma) if sigma > 0 else 0
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    line = torch.exp(-(taps**2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1, dtype=torch.float64)
    kernel = line[:, None] * line[None, :]
    return (kernel / kernel.sum()).float()[None, None]


def can_fuse(model: nn.Module, norms: nn.ModuleList) -> bool:
    """Whether ``model`` may take the fused inference path: eval mode, autograd
    off, and every batch norm using its running statistics."""
    return (
        not model.training
        and not torch.is_grad_enabled()
        and all(not norm.training and norm.running_mean is not None for norm in norms)
    )


def _fuse_conv2d(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> FusedConvReLU:
    weight, bias = fold_batch_norm(conv.weight, conv.bias, norm)
    return FusedConvReLU(weight, bias, stride=conv.stride[0], padding=int(conv.padding[0]))  # type: ignore[arg-type]
