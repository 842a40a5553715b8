"""The service asks each network what it can do (model.serving), never its class or its card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from app.answering.inference import LoadedModel, run_models
from model.centring import CENTRING_CONCENTRATION, MNIST_CENTRE, centred_pose, recentre
from model.checkpoint import load_checkpoint
from model.registry import create_model
from model.serving import ServingModel, as_serving

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@pytest.mark.parametrize(
    ("name", "group", "has_pose"),
    [
        ("cnn", None, False),
        ("gcnn_c8", "C8", False),
        ("gcnn_c8_pose", "C8", True),
        ("gcnn_c4", "C4", False),
        ("gcnn_c8_canon_pose", "C8", True),
        ("gcnn_c8_canon_pose_gated", "C8", True),
        ("gcnn_c8_canon_pose_gated_max", "C8", True),
        ("gcnn_c8_canon_pose_gated_max_x5", "C8", True),
    ],
)
def test_each_network_says_its_group_and_whether_it_has_a_pose(name: str, group: str | None, has_pose: bool) -> None:
    network = create_model(name, hidden_channels=2).eval()
    assert isinstance(network, ServingModel)
    assert (network.group.name if network.group is not None else None) == group and network.has_pose is has_pose
    with torch.inference_mode():
        probabilities, pose = network.predict(torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert probabilities.shape == (3, 10) and probabilities.dtype == torch.float32
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(3))
    assert (pose is not None) is has_pose


def test_group_and_orientation_come_from_the_network_not_its_card() -> None:
    network = create_model("gcnn_c8_pose", hidden_channels=2).eval()
    misleading = {"architecture": "BaselineCNN", "config": {"group": "D4", "head": "invariant"}}
    model = LoadedModel("pose", network, misleading)
    assert model.group == "C8" and model.has_orientation


def test_a_network_without_the_serving_interface_is_refused() -> None:
    with pytest.raises(TypeError, match="Sequential cannot be served: it lacks group, has_pose, predict"):
        LoadedModel("plain", nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), {"architecture": "Sequential"})


def test_the_shipped_pose_model_answers_as_before_through_the_interface_off_the_mnist_centre() -> None:
    network, card = load_checkpoint(WEIGHTS / "gcnn_c8_pose.json")
    images = torch.zeros(4, 1, 28, 28)  # ink in the top left corner: the mass far from MNIST's (14, 14)
    images[:, :, 2:14, 3:12] = torch.rand(4, 1, 12, 9, generator=torch.Generator().manual_seed(1))
    (output,) = run_models([LoadedModel("gcnn_c8_pose", network, card)], images)
    with torch.inference_mode():
        pose = network.forward_pose(images)  # type: ignore[operator]
    assert output.pose is not None
    torch.testing.assert_close(output.probabilities, pose.digit_probabilities.float())
    torch.testing.assert_close(output.pose.log_joint, pose.log_joint)


def test_the_shipped_pose_model_reads_an_input_centred_as_mnist_without_the_centre_of_mass_cue() -> None:
    network, card = load_checkpoint(WEIGHTS / "gcnn_c8_pose.json")
    images = recentre(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)), MNIST_CENTRE)
    (output,) = run_models([LoadedModel("gcnn_c8_pose", network, card)], images)
    with torch.inference_mode():
        pose = centred_pose(as_serving(network), images)
    assert output.pose is not None
    torch.testing.assert_close(output.probabilities, pose.digit_probabilities.float())
    torch.testing.assert_close(output.pose.log_joint, pose.log_joint)


def test_a_network_is_read_at_the_lean_its_card_records_and_every_other_at_the_served_one() -> None:
    network, card = load_checkpoint(WEIGHTS / "gcnn_c8_pose.json")
    images = recentre(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2)), MNIST_CENTRE)
    chosen = LoadedModel("chosen", network, {**card, "centred_reading": {"lean": 0.25}})
    assert chosen.lean == 0.25 and LoadedModel("served", network, card).lean == CENTRING_CONCENTRATION
    (output,) = run_models([chosen], images)
    with torch.inference_mode():
        at_lean, at_served = (
            centred_pose(as_serving(network), images, concentration=c) for c in (0.25, CENTRING_CONCENTRATION)
        )
    assert output.pose is not None
    torch.testing.assert_close(output.pose.log_joint, at_lean.log_joint)
    assert not torch.allclose(output.pose.log_joint, at_served.log_joint)


def test_a_card_with_a_lean_that_is_not_a_number_at_least_zero_is_refused() -> None:
    network = create_model("gcnn_c8_pose", hidden_channels=2).eval()
    for lean in (-0.5, float("nan"), "1", True, None):
        with pytest.raises(ValueError, match=r"centred_reading\.lean must be a finite number >= 0"):
            LoadedModel("bad", network, {"architecture": "GroupEquivariantCNN", "centred_reading": {"lean": lean}})
