"""The e2cnn side of the comparison builds the same network (parameters, shapes, invariance); no timing here."""

from __future__ import annotations

import pytest
import torch

from model.registry import create_model

pytest.importorskip("e2cnn", reason="the bench extra is not installed")

from bench.e2cnn_compare import E2cnnNet, _Exported, main


def test_e2cnn_network_matches_ours_layer_by_layer() -> None:
    ours, theirs = create_model("gcnn_c8_wide"), E2cnnNet()
    assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters()) == 51_130
    x = torch.rand(2, 1, 28, 28)
    assert theirs(x).shape == ours(x).shape == (2, 10)


def test_e2cnn_export_is_invariant_to_quarter_turns_like_ours() -> None:
    torch.manual_seed(0)
    net = E2cnnNet()
    net(torch.rand(8, 1, 28, 28))  # batch-norm statistics
    exported = _Exported(net.eval()).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        assert (exported(torch.rot90(x, 1, dims=(-2, -1))) - exported(x)).abs().max() <= 1e-4
        assert (exported(x) - net(x)).abs().max() <= 1e-4


def test_comparison_runs_and_prints_the_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--rounds", "1"])
    out = capsys.readouterr().out
    assert "e2cnn / ours" in out and "training step, batch 64" in out and "eval, batch 256" in out
