"""A trained network as plain PyTorch, and as ONNX: what runs without this package.

    python -m model.export weights/gcnn_c8_wide.json --onnx gcnn_c8_wide.onnx

:func:`export` turns a network into an ``nn.Sequential`` of ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``MaxPool3d``/``AvgPool3d`` (the pooling over the group axis),
``AdaptiveAvgPool2d``, ``Flatten``/``Unflatten`` and ``Linear``: every batch
norm folded into its convolution, every kernel bank expanded once. Its output
is the network's digit logits ``(B, 10)`` (for a joint head, the logits of the
digit marginal; the orientation needs the library). The same function computes
them as the network does, so the outputs agree up to float rounding, and the
quarter-turn invariance stays exact: the expanded banks are the library's.

The ONNX file is that module exported by ``torch.onnx.export`` (the
``torch.export``-based exporter, opset 18, one self-contained file, a dynamic
batch axis, input ``image`` ``(B, 1, 28, 28)`` float32 in [0, 1], output
``logits``). ``--check`` runs it with onnxruntime against the library.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import cast

import torch
from torch import nn

from model.checkpoint import load_checkpoint
from model.fusion import fold_batch_norm
from model.layers import GroupBatchNorm, GroupConv2d, LiftingConv2d
from model.networks import BaselineCNN, GroupEquivariantCNN
from model.orientation import JointHead

__all__ = ["export", "export_onnx", "main"]

logger = logging.getLogger(__name__)
OPSET = 18


@torch.no_grad()
def export(model: nn.Module) -> nn.Sequential:
    """``model`` (a G-CNN or the plain CNN, trained) as a plain-PyTorch ``nn.Sequential``, in eval mode."""
    if isinstance(model, GroupEquivariantCNN):
        layers = _gcnn_layers(model)
    elif isinstance(model, BaselineCNN):
        layers = _cnn_layers(model)
    else:
        raise TypeError(f"cannot export {type(model).__name__}: expected GroupEquivariantCNN or BaselineCNN")
    return nn.Sequential(*layers).eval()


def _conv(weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int) -> nn.Conv2d:
    out_channels, in_channels, size, _ = weight.shape
    conv = nn.Conv2d(in_channels, out_channels, size, stride=stride, padding=padding)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)  # type: ignore[union-attr]
    return conv


def _gcnn_layers(model: GroupEquivariantCNN) -> list[nn.Module]:
    config, order = model.config, model.group.order
    layers: list[nn.Module] = []
    if model.blur.shape[-1] > 1:  # the input low-pass, as a fixed convolution
        blur = nn.Conv2d(1, 1, model.blur.shape[-1], padding=model.blur.shape[-1] // 2, bias=False)
        blur.weight.copy_(model.blur)
        layers.append(blur)
    for index, (conv, norm) in enumerate(zip(model.convs, model.norms, strict=True)):
        conv, norm = cast(LiftingConv2d | GroupConv2d, conv), cast(GroupBatchNorm, norm)
        weight, bias = fold_batch_norm(conv.expand_kernel(), conv.bias, norm, repeats=order)
        layers += [_conv(weight, bias, conv.stride, conv.padding), nn.ReLU()]
        if index in config.pool_after:
            layers.append(nn.MaxPool2d(2))
    # (B, C*G, H, W) -> (B, C, G, H, W) -> pooled over the group axis -> (B, C, H, W)
    joint = isinstance(model.head, JointHead)
    pool_group = nn.MaxPool3d if joint or config.group_pool == "max" else nn.AvgPool3d
    layers += [nn.Unflatten(1, (config.hidden_channels, order)), pool_group((order, 1, 1)), nn.Flatten(1, 2)]
    linear = model.head.invariant if isinstance(model.head, JointHead) else model.head
    return [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), _copy_linear(cast(nn.Linear, linear))]


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
    """``export(model)`` as an ONNX file: input ``image`` ``(B, 1, size, size)``, output ``logits``."""
    plain = export(model)
    example = torch.rand(2, 1, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        plain,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=OPSET,
        dynamo=True,
        external_data=False,  # one self-contained file
        verbose=False,
    )
    return path


def check_onnx(model: nn.Module, path: Path, images: torch.Tensor) -> float:
    """The largest absolute difference between onnxruntime's logits and the library's on ``images``."""
    import onnxruntime  # dev dependency: only to check and to benchmark

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": images.numpy()})
    with torch.inference_mode():
        expected = model.eval()(images)
    return float((torch.from_numpy(logits) - expected).abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("card", type=Path, help="checkpoint JSON card (weights/<name>.json)")
    parser.add_argument("--onnx", type=Path, required=True, help="where to write the ONNX file")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with the library (needs it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model, card = load_checkpoint(args.card)
    export_onnx(model, args.onnx)
    logger.info("wrote %s (%s, %d bytes)", args.onnx, card["name"], args.onnx.stat().st_size)
    if args.check:
        images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        logger.info(
            "onnxruntime vs library, 64 random images: max |logit difference| %.2e",
            check_onnx(model, args.onnx, images),
        )


if __name__ == "__main__":
    main()
