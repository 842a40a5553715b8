"""Checkpoints and the shipped weights, without the dataset: round trips, cards, exact invariance."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.registry import create_model

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
SHIPPED_GCNNS = ["gcnn_c8_wide", "gcnn_c4_seed"]
# Measured on the shipped G-CNNs over 8 random inputs: quarter-turned logits within 3.8e-6 (fused) and 2.9e-6
# (layer by layer) of the upright ones, in float32. The tolerance is the library's network tolerance.
INVARIANCE_TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["gcnn_c8_pose", "gcnn_c8", "cnn"])
def test_checkpoint_round_trip_gives_the_saved_models_logits(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, hidden_channels=4) if name != "cnn" else create_model(name, hidden_channels=8)
    with torch.no_grad():
        model(torch.rand(16, 1, 28, 28))  # train mode: batch-norm statistics that are not the identity
    model.eval()
    card = save_checkpoint(model, tmp_path, name, {"metrics": {}})
    loaded, _ = load_checkpoint(card)
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_checkpoint_files_are_readable_as_the_umask_says_like_the_card(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        card = save_checkpoint(create_model("cnn", hidden_channels=2), tmp_path, "cnn", {"metrics": {}})
    finally:
        os.umask(previous)
    weights = tmp_path / "cnn.safetensors"
    assert stat.S_IMODE(weights.stat().st_mode) == stat.S_IMODE(card.stat().st_mode) == 0o644


@pytest.mark.parametrize("name", SHIPPED_GCNNS)
@pytest.mark.parametrize("path", ["fused", "layer by layer"])
def test_shipped_gcnn_is_exactly_invariant_to_quarter_turns(name: str, path: str) -> None:
    model, _ = load_checkpoint(WEIGHTS / f"{name}.json")
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    context = torch.inference_mode() if path == "fused" else torch.enable_grad()  # autograd on: no fusion, no cache
    with context:
        upright = model(x).detach()
        for k in (1, 2, 3):
            turned = model(torch.rot90(x, k, dims=(-2, -1))).detach()
            assert (turned - upright).abs().max() <= INVARIANCE_TOLERANCE, (name, path, k)


def test_shipped_cards_record_the_protocol_and_the_shared_recipe() -> None:
    """What the cards say (the numbers themselves are re-measured by test_training's slow tests):
    the full test set, and the same epochs and learning rate for the G-CNN as for the CNN it is compared with."""
    card = json.loads((WEIGHTS / "gcnn_c8_wide.json").read_text())
    baseline = json.loads((WEIGHTS / "cnn_seed.json").read_text())
    assert card["metrics"]["test_digits"] == baseline["metrics"]["test_digits"] == 10000
    assert card["metrics"]["rotated_accuracy"] >= 0.95 and card["metrics"]["upright_accuracy"] >= 0.992
    assert card["parameters"] <= 2 * baseline["parameters"]
    assert (card["training"]["epochs"], card["training"]["lr"]) == (
        baseline["training"]["epochs"],
        baseline["training"]["lr"],
    )
