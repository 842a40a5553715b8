"""A trained network as plain PyTorch, and as ONNX: what runs without this package.

    python -m model.export weights/gcnn_c8_wide.json --onnx gcnn_c8_wide.onnx

:func:`export` turns a network into an ``nn.Sequential`` of ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``MaxPool3d``/``AvgPool3d`` (the pooling over the group axis),
``AdaptiveAvgPool2d``, ``Flatten``/``Unflatten`` and ``Linear`` (``ELU``/``Softplus``
and a fixed per-channel ``Conv2d`` for the blur pool where the config asks): every
batch norm folded into its convolution, every kernel bank expanded once. Its output
is the network's digit logits ``(B, 10)``. A network with a joint head exports
its orientation too: a ``torch.fx.GraphModule`` of the same layers (plus one
bias-free ``Linear`` and a ``LogSoftmax`` for the pose; for a pose not linear in the
features, gated (:mod:`model.pose_gate`) or pooling space by its maximum too, the head's
own arithmetic) whose outputs are the
digit logits and ``log p(digit, element)`` ``(B, 10, |G|)``, the library's
``forward_joint``. A network that turns its input to its own principal axis first
(``canonicalize``, :mod:`model.canonical`) exports as a traced module that does the
same in torch operations (moments, ``atan2``, bicubic upsampling, ``grid_sample``,
average pooling; for one input size, 28x28 by default) and shifts its joint head's profile back by the turn.
The continuous angle between group elements (``forward_pose``) needs the library.
The same function computes them as the network does, so the
outputs agree up to float rounding, and the quarter-turn behaviour stays exact:
the expanded banks are the library's.

The ONNX file is that module exported by ``torch.onnx.export`` (the
``torch.export``-based exporter, opset 18, one self-contained file, a dynamic
batch axis, input ``image`` ``(B, in_channels, 28, 28)`` float32 in [0, 1],
output ``logits``, and ``joint`` for a joint head). ``--check`` runs it with
onnxruntime against the library.
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.antialias import binomial_kernel
from model.canonical import UPSAMPLING, axis_angle, ink_centre, standing_turn
from model.checkpoint import load_checkpoint
from model.fusion import fold_batch_norm
from model.layers import GroupBatchNorm, GroupConv2d, LiftingConv2d
from model.networks import BaselineCNN, CNNConfig, GroupEquivariantCNN
from model.orientation import JointHead, pose_profile, shifted_profile

__all__ = ["export", "export_onnx", "main"]

logger = logging.getLogger(__name__)
OPSET = 18


@torch.no_grad()
def export(model: nn.Module, size: int = 28) -> nn.Module:
    """``model`` (a G-CNN or the plain CNN, trained) as plain PyTorch, in eval mode.

    An ``nn.Sequential`` that computes the digit logits ``(B, classes)``; for a network with a
    joint head, a ``torch.fx.GraphModule`` that computes ``(logits, joint)``, ``joint`` being
    ``log p(digit, element)`` ``(B, classes, |G|)`` as :meth:`GroupEquivariantCNN.forward_joint`.
    ``size``: the side of the square inputs it is checked on; a canonicalising network's export takes
    only that size (its moments and sampling grid are built for it).

    Raises:
        TypeError: ``model`` is neither network.
        ValueError: the export does not reproduce ``model``'s eval-mode outputs on a probe batch
            (a layer or option this function does not know): nothing is exported silently wrong.
    """
    if isinstance(model, GroupEquivariantCNN):
        features, digits = _gcnn_features(model), _invariant_head(model)
        plain: nn.Module
        if model.config.canonicalize:
            pose = _shifted_pose(model.head) if isinstance(model.head, JointHead) else None
            canonical = _Canonical(size, centred=model.config.canonical_centred)
            outputs = _CanonicalOutputs(canonical, nn.Sequential(*features), nn.Sequential(*digits), pose)
            plain = torch.fx.symbolic_trace(outputs)
        elif isinstance(model.head, JointHead):
            pose_head = _pose_head(model.head) if model.head.is_linear else _TracedPose(model.head)
            joint = _JointOutputs(nn.Sequential(*features), nn.Sequential(*digits), pose_head)
            plain = torch.fx.symbolic_trace(joint)  # generated code: no class of this package
        else:
            plain = nn.Sequential(*features, *digits)
    elif isinstance(model, BaselineCNN):
        plain = nn.Sequential(*_cnn_layers(model))
    else:
        raise TypeError(f"cannot export {type(model).__name__}: expected GroupEquivariantCNN or BaselineCNN")
    _check_reproduces(model, plain.eval(), size)
    return plain


def _check_reproduces(model: nn.Module, plain: nn.Module, size: int, tolerance: float = 1e-3) -> None:
    """Raise ``ValueError`` unless ``plain`` gives ``model``'s eval-mode outputs on a probe batch."""
    channels = cast(CNNConfig, model.config).in_channels
    probe = torch.rand(4, channels, size, size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    if was_training:  # (an eval-mode model keeps its caches)
        model.eval()
    try:
        expected = [model(probe)]
        if _has_joint_head(model):
            expected.append(cast(GroupEquivariantCNN, model).forward_joint(probe))
    finally:
        if was_training:
            model.train()
    found = plain(probe)
    found = list(found) if isinstance(found, tuple) else [found]
    gap = max(float((a - b).abs().max()) for a, b in zip(found, expected, strict=True))
    if not gap <= tolerance * max(1.0, max(float(e.abs().max()) for e in expected)):
        raise ValueError(
            f"cannot export {type(model).__name__}: the plain module's outputs differ from the network's by "
            f"{gap:.3g} on a probe batch (a layer or option the export does not know?)"
        )


class _JointOutputs(nn.Module):
    """``(logits (B, D), log p(digit, element) (B, D, |G|))`` from shared features; traced by
    ``torch.fx`` into a module of ``torch.nn`` layers, so the export never refers to this class."""

    def __init__(self, features: nn.Sequential, digits: nn.Sequential, pose: nn.Module) -> None:
        super().__init__()
        self.features, self.digits, self.pose = features, digits, pose

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)  # (B, C*G, H, W)
        logits = self.digits(features)  # (B, D)
        return logits, torch.log_softmax(logits, dim=1).unsqueeze(2) + self.pose(features)  # (B, D, G)


class _Canonical(nn.Module):
    """Images ``(B, I, S, S)`` -> (the images turned to their principal axis, the turn ``(B,)`` in degrees):
    :func:`model.canonical.canonicalize` for one image size, in torch operations only (traced by ``torch.fx``;
    the angle by the library's own :func:`~model.canonical.axis_angle`, the turn's sampling grid as
    :func:`model.rotation.rotate_bilinear` builds it, in float32); with ``centred``, about the centre of mass."""

    rows: torch.Tensor  # buffers, annotated for type checkers
    cols: torch.Tensor
    fine_x: torch.Tensor
    fine_y: torch.Tensor

    def __init__(self, size: int, centred: bool = False) -> None:
        super().__init__()
        self.centred, self.centre = centred, (size - 1) / 2
        pixels, fine = torch.arange(size, dtype=torch.float32), torch.arange(size * UPSAMPLING, dtype=torch.float32)
        self.register_buffer("rows", pixels[:, None])  # (S, 1)
        self.register_buffer("cols", pixels[None, :])  # (1, S)
        centre = (size * UPSAMPLING - 1) / 2
        self.register_buffer("fine_x", (fine - centre)[None, :])  # (1, 2S): x of the fine grid's columns, right
        self.register_buffer("fine_y", (centre - fine)[:, None])  # (2S, 1): y of its rows, up
        self.to_grid = 2.0 / (size * UPSAMPLING)  # plane offsets from the centre -> grid_sample's [-1, 1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ink = images.clamp_min(0.0).sum(dim=1)  # (B, S, S)
        turn = standing_turn(axis_angle(ink, self.rows, self.cols))  # (B,) degrees
        theta = torch.deg2rad(turn)[:, None, None]  # (B, 1, 1)
        cos, sin = torch.cos(theta), torch.sin(theta)
        source_x = cos * self.fine_x + sin * self.fine_y  # (B, 2S, 2S): where each output pixel reads, R(-theta)
        source_y = cos * self.fine_y - sin * self.fine_x
        if self.centred:  # about the centre of mass: its offset from the image centre, in fine pixels
            row, col = ink_centre(ink, self.rows, self.cols)  # (B,), (B,)
            source_x = source_x + (UPSAMPLING * (col - self.centre))[:, None, None]
            source_y = source_y + (UPSAMPLING * (self.centre - row))[:, None, None]
        grid = torch.stack((source_x * self.to_grid, -source_y * self.to_grid), dim=-1)  # (B, 2S, 2S, 2)
        fine = F.interpolate(images, scale_factor=UPSAMPLING, mode="bicubic", align_corners=False)  # (B, I, 2S, 2S)
        turned = F.grid_sample(fine, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return F.avg_pool2d(turned, UPSAMPLING), turn


class _CanonicalOutputs(nn.Module):
    """A canonicalising network's outputs: the logits, and with a pose the joint ``log p(digit, element)`` whose
    profile is shifted back by the turn (:func:`model.orientation.shifted_profile`); traced by ``torch.fx``."""

    def __init__(self, canonical: _Canonical, features: nn.Sequential, digits: nn.Sequential, pose: nn.Module | None):
        super().__init__()
        self.canonical, self.features, self.digits, self.pose = canonical, features, digits, pose

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        turned, turn = self.canonical(x)
        features = self.features(turned)  # (B, C*G, H, W)
        logits = self.digits(features)  # (B, D)
        if self.pose is None:
            return logits
        return logits, torch.log_softmax(logits, dim=1).unsqueeze(2) + self.pose(features, turn)  # (B, D, G)


class _ShiftedPose(nn.Module):
    """Features ``(B, C*G, H, W)`` and turns ``(B,)`` -> ``log p(element | digit)`` ``(B, D, G)`` of the profile
    shifted back by the turn: the coefficients ``V`` are linear in the per-element features (one bias-free
    ``Linear``, the head's coefficients of each feature alone), then shifted and read at the group's elements."""

    cos_table: torch.Tensor  # buffers: (G, M) as the head's
    sin_table: torch.Tensor

    def __init__(self, head: JointHead) -> None:
        super().__init__()
        coefficients = _coefficients_alone(head)  # (C*G, D, M, 2)
        self.shape = tuple(coefficients.shape[1:])  # (D, M, 2)
        self.linear = nn.Linear(coefficients.shape[0], coefficients[0].numel(), bias=False)
        self.linear.weight.copy_(coefficients.flatten(1).T)  # (D*M*2, C*G)
        self.register_buffer("cos_table", head.cos_table.clone())
        self.register_buffer("sin_table", head.sin_table.clone())

    def forward(self, features: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
        coefficients = self.linear(features.mean(dim=(2, 3))).unflatten(1, self.shape)  # (B, D, M, 2)
        shifted = shifted_profile(coefficients, turn)
        return torch.log_softmax(pose_profile(shifted, self.cos_table, self.sin_table), dim=2)


class _TracedPose(nn.Module):
    """Features ``(B, C*G, H, W)`` (and turns ``(B,)`` for a canonicalising network) -> ``log p(element | digit)``
    ``(B, D, G)`` of a joint head that is not linear in the features (gated, :mod:`model.pose_gate`, or pooling
    space by its maximum too): the head's own arithmetic, traced by ``torch.fx`` into ``torch`` operations and its
    ``Linear``, ``ReLU`` and ``BatchNorm1d``."""

    def __init__(self, head: JointHead) -> None:
        super().__init__()
        self.head = copy.deepcopy(head).eval()
        self.shape = (head.invariant.in_features, head.cos_table.shape[0])  # (C, G)

    def forward(self, features: torch.Tensor, turn: torch.Tensor | None = None) -> torch.Tensor:
        per_element = self.head.per_element(features.unflatten(1, self.shape))  # (B, C', G)
        coefficients = self.head.pose_coefficients(per_element)  # (B, D, M, 2)
        if turn is not None:
            coefficients = shifted_profile(coefficients, turn)
        return torch.log_softmax(pose_profile(coefficients, self.head.cos_table, self.head.sin_table), dim=2)


def _shifted_pose(head: JointHead) -> nn.Module:
    """A canonicalising network's pose module: ``(features, turn)`` -> ``log p(element | digit)``."""
    return _ShiftedPose(head) if head.is_linear else _TracedPose(head)


def _conv(weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int) -> nn.Conv2d:
    out_channels, in_channels, size, _ = weight.shape
    conv = nn.Conv2d(in_channels, out_channels, size, stride=stride, padding=padding)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)  # type: ignore[union-attr]
    return conv


def _gcnn_features(model: GroupEquivariantCNN) -> list[nn.Module]:
    """Image ``(B, I, H, W)`` -> features ``(B, C*G, H', W')``: the input low-pass, then every
    conv + batch norm + ReLU as one convolution."""
    config, order = model.config, model.group.order
    layers: list[nn.Module] = []
    size = model.blur.shape[-1]
    if size > 1:  # the input low-pass: a fixed convolution of each channel alone
        channels = config.in_channels
        blur = nn.Conv2d(channels, channels, size, padding=size // 2, groups=channels, bias=False)
        blur.weight.copy_(model.blur.expand(channels, 1, size, size))
        layers.append(blur)
    for index, (conv, norm) in enumerate(zip(model.convs, model.norms, strict=True)):
        conv, norm = cast(LiftingConv2d | GroupConv2d, conv), cast(GroupBatchNorm, norm)
        weight, bias = fold_batch_norm(conv.expand_kernel(), conv.bias, norm, repeats=order)
        layers += [_conv(weight, bias, conv.stride, conv.padding), _ACTIVATIONS[config.nonlinearity]()]
        if index in config.pool_after:
            layers += _subsampling(config.subsample, config.hidden_channels * order)
    return layers


_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "softplus": nn.Softplus}


def _subsampling(mode: str, channels: int) -> list[nn.Module]:
    """:func:`model.antialias.subsample` of ``channels`` maps as layers."""
    if mode == "max":
        return [nn.MaxPool2d(2)]
    # blur_pool (low_pass_pool): a 2x2 max (mean) at stride 1, then the binomial low-pass of each channel at stride 2
    peaks: dict[str, nn.Module] = {"blur": nn.MaxPool2d(2, stride=1), "low_pass": nn.AvgPool2d(2, stride=1)}
    low_pass = nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False)
    low_pass.weight.copy_(binomial_kernel().expand(channels, 1, 3, 3))
    return [peaks[mode], low_pass]


def _invariant_head(model: GroupEquivariantCNN) -> list[nn.Module]:
    """Features ``(B, C*G, H, W)`` -> digit logits ``(B, D)``: pooled over the group axis, then space."""
    config, order = model.config, model.group.order
    joint = isinstance(model.head, JointHead)
    pool_group = nn.MaxPool3d if joint or config.group_pool == "max" else nn.AvgPool3d
    # (B, C*G, H, W) -> (B, C, G, H, W) -> pooled over the group axis -> (B, C, H, W)
    layers = [nn.Unflatten(1, (config.hidden_channels, order)), pool_group((order, 1, 1)), nn.Flatten(1, 2)]
    linear = model.head.invariant if isinstance(model.head, JointHead) else model.head
    return [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), _copy_linear(cast(nn.Linear, linear))]


def _coefficients_alone(head: JointHead) -> torch.Tensor:
    """The pose coefficients ``V`` ``(C*G, D, M, 2)`` of each per-element feature alone, in float64: ``V`` is
    linear in the per-element features (see :mod:`model.orientation`), so these are the columns of its matrix."""
    double = copy.deepcopy(head).double()
    channels, order = double.invariant.in_features, double.cos_table.shape[0]
    alone = torch.eye(channels * order, dtype=torch.float64).reshape(-1, channels, order)  # (C*G, C, G)
    return double.pose_coefficients(alone)


def _pose_head(head: JointHead) -> nn.Sequential:
    """Features ``(B, C*G, H, W)`` -> ``log p(element | digit)`` ``(B, D, G)``.

    The pose profile at the group elements is linear in the per-element features ``z(c, g)``
    (see :mod:`model.orientation`), so it is one bias-free ``Linear`` ``C*G -> D*G``, whose
    columns are the head's own profile of each feature alone (computed in float64).
    """
    coefficients = _coefficients_alone(head)  # (C*G, D, M, 2)
    profiles = pose_profile(coefficients, head.cos_table.double(), head.sin_table.double())  # (C*G, D, G)
    classes, order = profiles.shape[1:]
    linear = nn.Linear(profiles.shape[0], classes * order, bias=False)
    linear.weight.copy_(profiles.flatten(1).T)  # (D*G, C*G)
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear, nn.Unflatten(1, (classes, order)), nn.LogSoftmax(dim=2)
    )


def _cnn_layers(model: BaselineCNN) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index, (conv, norm) in enumerate(zip(model.convs, model.norms, strict=True)):
        conv, norm = cast(nn.Conv2d, conv), cast(nn.BatchNorm2d, norm)
        weight, bias = fold_batch_norm(conv.weight, conv.bias, norm)
        layers += [_conv(weight, bias, conv.stride[0], int(conv.padding[0])), nn.ReLU()]  # type: ignore[arg-type]
        if index in model.config.pool_after:
            layers.append(nn.MaxPool2d(2))
    return [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), _copy_linear(cast(nn.Linear, model.head))]


def _copy_linear(linear: nn.Linear) -> nn.Linear:
    copy = nn.Linear(linear.in_features, linear.out_features)
    copy.load_state_dict(linear.state_dict())
    return copy


def export_onnx(model: nn.Module, path: Path, size: int = 28) -> Path:
    """``export(model)`` as an ONNX file: input ``image`` ``(B, in_channels, size, size)``, output
    ``logits``, and ``joint`` for a network with a joint head (see :func:`export`)."""
    plain = export(model, size)
    channels = cast(CNNConfig, model.config).in_channels
    outputs = ["logits", "joint"] if _has_joint_head(model) else ["logits"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        plain,
        (torch.rand(2, channels, size, size),),
        str(path),
        input_names=["image"],
        output_names=outputs,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=OPSET,
        dynamo=True,
        external_data=False,  # one self-contained file
        verbose=False,
    )
    return path


def check_onnx(model: nn.Module, path: Path, images: torch.Tensor) -> float:
    """The largest absolute difference between onnxruntime's outputs and the library's on ``images``:
    the digit logits, and for a joint head ``log p(digit, element)`` too."""
    import onnxruntime  # dev dependency: only to check and to benchmark

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    found = session.run(names, {"image": images.numpy()})
    with torch.inference_mode():
        model.eval()
        expected = {"logits": model(images)}
        if _has_joint_head(model):
            expected["joint"] = cast(GroupEquivariantCNN, model).forward_joint(images)
    if sorted(names) != sorted(expected):
        raise ValueError(f"{path} has outputs {names}, the library {sorted(expected)}")
    return max(
        float((torch.from_numpy(array) - expected[name]).abs().max()) for name, array in zip(names, found, strict=True)
    )


def _has_joint_head(model: nn.Module) -> bool:
    return isinstance(model, GroupEquivariantCNN) and isinstance(model.head, JointHead)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("card", type=Path, help="checkpoint JSON card (weights/<name>.json)")
    parser.add_argument("--onnx", type=Path, required=True, help="where to write the ONNX file")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with the library (needs it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model, card = load_checkpoint(args.card)
    export_onnx(model, args.onnx)
    outputs = "logits, joint" if _has_joint_head(model) else "logits"
    logger.info("wrote %s (%s, %d bytes, outputs: %s)", args.onnx, card["name"], args.onnx.stat().st_size, outputs)
    if args.check:
        channels = cast(CNNConfig, model.config).in_channels
        images = torch.rand(64, channels, 28, 28, generator=torch.Generator().manual_seed(0))
        logger.info(
            "onnxruntime vs library, 64 random images: max |output difference| %.2e",
            check_onnx(model, args.onnx, images),
        )


if __name__ == "__main__":
    main()
