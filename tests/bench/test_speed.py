"""The library benchmark's helpers and a tiny end-to-end run (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from bench import speed
from bench.timing import count_flops, set_kernel_cache, time_calls
from model.registry import create_model


def test_conv_and_linear_flops_are_two_per_multiply_add() -> None:
    conv, linear = nn.Conv2d(3, 8, 5, padding=2), nn.Linear(8, 10)
    with torch.no_grad():
        flops = count_flops(lambda: linear(conv(torch.rand(2, 3, 16, 16)).mean(dim=(-2, -1))))
    assert flops == 2 * (2 * 8 * 16 * 16 * 3 * 5 * 5) + 2 * (2 * 8 * 10)


def test_gcnn_forward_flops_match_the_layer_shapes() -> None:
    model = create_model("gcnn_c8", hidden_channels=2).eval()
    x = torch.rand(1, 1, 28, 28)
    with torch.inference_mode():
        model(x)  # fill the kernel cache: steady-state inference expands nothing
        flops = count_flops(lambda: model(x))
    channels, size = 2 * 8, 25  # channel-equivalents (C x |G|), 5x5 kernels
    lifting = 28 * 28 * channels * size  # multiply-adds per conv
    group_convs = (2 * 14 * 14 + 2 * 7 * 7) * channels * channels * size
    convs = lifting + group_convs
    assert flops == 2 * convs + 2 * 2 * 10


def test_time_calls_reports_quantiles_in_order() -> None:
    timing = time_calls(lambda: sum(range(100)), runs=11, warmup=1)
    assert timing.runs == 11 and 0 < timing.p10 <= timing.median <= timing.p90
    with pytest.raises(ValueError, match="runs"):
        time_calls(lambda: None, runs=0)


def test_set_kernel_cache_reaches_every_equivariant_layer() -> None:
    model = create_model("gcnn_c8", hidden_channels=2)
    set_kernel_cache(model, False)
    assert all(not m.cache_kernels for m in model.modules() if hasattr(m, "cache_kernels"))


def test_tiny_end_to_end_run_prints_every_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "speed.json"
    speed.main(
        ["--latency-runs", "2", "--throughput-runs", "1", "--train-runs", "1", "--batch", "4",
         "--train-batch", "4", "--matmul-sizes", "64", "--json", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    for text in ("fp32 matmul rate", "gcnn_c8_wide / cnn_seed", "targets (gcnn_c8_wide)", "kernel cache off"):
        assert text in printed
    numbers = json.loads(out.read_text())
    assert [m["name"] for m in numbers["models"]] == ["cnn_seed", "gcnn_c8_wide"]
    assert numbers["models"][1]["flops_per_image"] == pytest.approx(0.2296e9, rel=1e-3)


def test_pose_reading_through_the_serving_interface_is_counted_with_the_kernel_banks_cached() -> None:
    model = create_model("gcnn_c8_canon_pose", hidden_channels=2).eval()
    x = torch.rand(1, 1, 28, 28)
    with torch.inference_mode():
        cold = count_flops(lambda: model.forward_pose(x))  # the first call expands every kernel bank
        model(x)
        forward = count_flops(lambda: model(x))
    pose = speed.measure_pose(model, runs=2)
    assert pose.images == 1 and forward < pose.flops < cold
