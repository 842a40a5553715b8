"""Export: the shipped networks as plain PyTorch and as ONNX, same logits, same exact quarter-turn invariance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from model.checkpoint import load_checkpoint
from model.export import check_onnx, export, export_onnx, main
from model.groups import get_group
from model.registry import create_model

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
SHIPPED = ["gcnn_c8_pose", "gcnn_c8_wide", "gcnn_c4_seed", "cnn_seed"]
# Measured: exported vs library logits <= 4e-6 (PyTorch) and <= 4e-6 (onnxruntime) on the shipped models.
TOLERANCE = 1e-4


def images(count: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SHIPPED)
def test_exported_module_is_plain_pytorch_with_the_same_logits(name: str) -> None:
    model, _ = load_checkpoint(WEIGHTS / f"{name}.json")
    plain = export(model)
    assert all(type(module).__module__.startswith("torch.nn") for module in plain.modules())
    assert not any(isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d) for module in plain.modules())
    x = images()
    with torch.inference_mode():
        assert (plain(x) - model(x)).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", ["gcnn_c8_pose", "gcnn_c8_wide", "gcnn_c4_seed"])
def test_exported_gcnn_keeps_exact_quarter_turn_invariance(name: str) -> None:
    model, card = load_checkpoint(WEIGHTS / f"{name}.json")
    plain, group = export(model), get_group(card["config"]["group"])
    x = images(8)
    with torch.inference_mode():
        upright = plain(x)
        for k in range(1, 4):
            turned = plain(torch.rot90(x, k, dims=(-2, -1)))
            assert (turned - upright).abs().max() <= 1e-4, (name, k, group)


def test_export_covers_the_joint_head_and_the_input_blur() -> None:
    torch.manual_seed(0)
    model = create_model("gcnn_c8_pose", input_blur=0.8, hidden_channels=4)
    model(torch.rand(16, 1, 28, 28))  # batch-norm statistics
    model.eval()
    x = images(4)
    with torch.inference_mode():
        assert (export(model)(x) - model(x)).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_file_runs_in_onnxruntime_with_the_same_logits_and_invariance(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model, _ = load_checkpoint(WEIGHTS / f"{name}.json")
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    x = images(32)
    assert check_onnx(model, path, x) <= TOLERANCE
    if name != "cnn_seed":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (upright,) = session.run(["logits"], {"image": x.numpy()})
        (turned,) = session.run(["logits"], {"image": torch.rot90(x, 1, dims=(-2, -1)).contiguous().numpy()})
        assert abs(turned - upright).max() <= 1e-4


def test_export_cli_writes_an_onnx_file(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "cnn.onnx"
    main([str(WEIGHTS / "cnn_seed.json"), "--onnx", str(out), "--check"])
    assert out.is_file() and out.stat().st_size > 100_000


def test_export_refuses_other_modules() -> None:
    with pytest.raises(TypeError, match="cannot export"):
        export(nn.Linear(2, 2))
