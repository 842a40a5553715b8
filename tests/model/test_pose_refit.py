"""Fitting a trained network's pose anew on its frozen features (model.pose_refit)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.networks import GroupEquivariantCNN
from model.orientation import JointHead, shifted_profile
from model.pose_refit import POSE_FIELDS, angle_loss, main, per_element_features, refit, start_from
from model.registry import MODELS
from tests.model.test_equivariance import blobs

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
BASE = WEIGHTS / "gcnn_c8_canon_pose.json"
# every shipped network made by model.pose_refit, and the trained network it was fitted on
SHIPPED_REFITS = [
    ("gcnn_c8_canon_pose_gated", "gcnn_c8_canon_pose"),
    ("gcnn_c8_canon_pose_gated_max", "gcnn_c8_canon_pose"),
    ("gcnn_c8_canon_pose_gated_max_x5", "gcnn_c8_canon_pose"),
    ("gcnn_c8_canon_pose_wide_gated_max", "gcnn_c8_canon_pose_wide"),
    ("gcnn_c8_canon_pose_wide_gated_max_x5", "gcnn_c8_canon_pose_wide"),
]


def test_angle_loss_is_log_steps_for_a_flat_profile_and_lowest_for_one_peaked_at_zero() -> None:
    labels = torch.tensor([3])
    flat = torch.zeros(1, 10, 3, 2, dtype=torch.float64)
    assert math.isclose(float(angle_loss(flat, labels)), math.log(72), rel_tol=1e-12)
    losses = {}
    for peak in (0.0, 5.0, 30.0):  # l(theta) = 4 cos(theta - peak): V_1 = 4 e^{i peak}
        coefficients = flat.clone()
        coefficients[0, 3, 0] = torch.tensor([4 * math.cos(math.radians(peak)), 4 * math.sin(math.radians(peak))])
        losses[peak] = float(angle_loss(coefficients, labels))
    assert losses[0.0] < losses[5.0] < losses[30.0] < math.log(72)


@pytest.mark.parametrize(("refitted", "trained"), SHIPPED_REFITS)
def test_each_refitted_name_differs_from_the_network_it_is_fitted_on_only_in_its_pose(
    refitted: str, trained: str
) -> None:
    new, old = MODELS[refitted][1].to_dict(), MODELS[trained][1].to_dict()
    changed = {key for key in new if new[key] != old[key]}
    assert changed and changed <= set(POSE_FIELDS), changed


@pytest.mark.parametrize(("refitted", "trained"), SHIPPED_REFITS)
def test_each_shipped_refit_keeps_every_weight_of_its_trained_network_but_the_pose(refitted: str, trained: str) -> None:
    new, _ = load_checkpoint(WEIGHTS / f"{refitted}.json")
    old, _ = load_checkpoint(WEIGHTS / f"{trained}.json")
    kept = new.state_dict()
    for key, value in old.state_dict().items():
        if not key.startswith("head.pose"):
            assert torch.equal(kept[key], value), key


def test_start_from_keeps_every_weight_but_the_pose_and_refuses_other_networks() -> None:
    trained, _ = load_checkpoint(BASE)
    model, card = start_from(BASE, "gcnn_c8_canon_pose_gated")
    assert card["name"] == "gcnn_c8_canon_pose"
    kept = model.state_dict()
    for key, value in trained.state_dict().items():
        if not key.startswith("head.pose"):
            assert torch.equal(kept[key], value), key
    x = blobs()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), trained(x))  # the same digit logits, to the last bit
    with pytest.raises(SystemExit, match="differs"):
        start_from(WEIGHTS / "gcnn_c8_pose.json", "gcnn_c8_canon_pose_gated")  # no canonical turn
    with pytest.raises(SystemExit, match="joint head"):
        start_from(BASE, "gcnn_c8_canon")
    linear, _ = start_from(BASE, "gcnn_c8_canon_pose_gated", {"pose_gate": 0})  # the pose fields may be set
    assert isinstance(linear.head, JointHead) and not linear.head.gates and linear.head.frequencies == 3
    pooled, _ = start_from(BASE, "gcnn_c8_canon_pose_gated_max")  # the spatial pooling of the pose is a pose field
    assert isinstance(pooled.head, JointHead) and pooled.head.pool == "mean_max"
    with torch.no_grad():
        assert torch.equal(pooled.eval()(x), trained(x))
    with pytest.raises(SystemExit, match="differs"):
        start_from(BASE, "gcnn_c8_canon_pose_gated", {"hidden_channels": 8})  # nothing else


@pytest.mark.parametrize(("name", "channels"), [("gcnn_c8_canon_pose_gated", 12), ("gcnn_c8_canon_pose_gated_max", 24)])
def test_refit_lowers_the_angle_loss_and_trains_nothing_but_the_pose(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model, _ = start_from(BASE, name)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    images = torch.rand(64, 1, 28, 28).pow(4)  # sparse bright specks: a principal axis each
    features, turns = per_element_features(model, images)  # 12 channels' means (and maxima)
    assert features.shape == (64, channels, 8) and turns is not None and turns.shape == (64,)
    assert isinstance(model.head, JointHead)
    history = refit(
        model.head, features, turns, torch.randint(0, 10, (64,)), steps=101, batch_size=32, lr=1e-2, weight_decay=0.0
    )
    assert history[-1] < history[0]
    assert not model.head.training
    for key, value in model.state_dict().items():
        changed = not torch.equal(value, before[key])
        assert changed == key.startswith(("head.pose", "head.gate")) or "num_batches_tracked" in key, key


def test_refit_fits_each_reader_apart_to_a_pose_of_its_own_and_answers_their_mean() -> None:
    torch.manual_seed(0)
    model, _ = start_from(BASE, "gcnn_c8_canon_pose_gated_max", {"pose_readers": 3})
    head = model.head
    assert isinstance(head, JointHead) and head.readers == 3 and len(head.gates) == 3
    images = torch.rand(64, 1, 28, 28).pow(4)
    features, turns = per_element_features(model, images)
    assert turns is not None
    labels = torch.randint(0, 10, (64,))
    with torch.no_grad():
        before = [angle_loss(shifted_profile(head.reader_coefficients(features, r), turns), labels) for r in range(3)]
    refit(head, features, turns, labels, steps=101, batch_size=32, lr=1e-2, weight_decay=0.0)
    with torch.no_grad():
        readings = torch.stack([head.reader_coefficients(features, r) for r in range(3)])  # (R, B, D, M, 2)
        after = [angle_loss(shifted_profile(readings[r], turns), labels) for r in range(3)]
        assert all(a < b for a, b in zip(after, before, strict=True))  # each reader fitted
        assert (readings[0] - readings[1]).abs().max() > 1e-2 and (readings[1] - readings[2]).abs().max() > 1e-2
        torch.testing.assert_close(head.pose_coefficients(features), readings.mean(dim=0))


@pytest.mark.data
def test_refit_command_writes_a_card_with_the_refit_and_keeps_the_digits(tmp_path: Path) -> None:
    card_path = main([
        str(BASE), "--model", "gcnn_c8_canon_pose_gated", "--name", "refit", "--limit", "200", "--steps", "20",
        "--batch-size", "50", "--eval-limit", "100", "--val-split", "20", "--threads", "2", "--out-dir", str(tmp_path),
    ])  # fmt: skip
    card = json.loads(card_path.read_text())
    base = json.loads(BASE.read_text())
    assert card["pose_refit"]["from"]["sha256"] == base["sha256"] and card["pose_refit"]["train_digits"] == 200
    assert card["training"] == base["training"] and card["config"]["pose_gate"] == 128
    assert "rotated_orientation_median_error" in card["metrics"]["orientation"]
    held_out = card["metrics"]["validation_orientation"]  # the last 20 MNIST digits, out of the refit's 200
    assert set(held_out) == {"before", "after"} and 0 <= held_out["after"]["rotated_orientation_within_22_5"] <= 1
    assert card["pose_refit"]["data"]["mnist"]["held_out_for_validation"] == 20
    refitted, _ = load_checkpoint(card_path)
    trained, _ = load_checkpoint(BASE)
    assert isinstance(refitted, GroupEquivariantCNN)
    x = blobs()
    with torch.no_grad():
        assert torch.equal(refitted(x), trained(x))
