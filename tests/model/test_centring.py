"""Reading an input whose centre of mass was placed at MNIST's whatever its turn (model.centring)."""

from __future__ import annotations

import pytest
import torch

from model.centring import (
    CENTRING_CONCENTRATION,
    MNIST_CENTRE,
    centred_pose,
    chosen_lean,
    mass_position,
    mass_quarter_turn,
    predict_centred,
    recentre,
)
from model.networks import BaselineCNN, GroupEquivariantCNN
from model.orientation import ANGLE_STEPS
from model.registry import create_model
from model.rotation import rotate


def _centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` row and column of each ``(B, 1, H, W)`` image's centre of mass."""
    mass = images[:, 0].double()
    total = mass.sum(dim=(1, 2))
    rows = mass.sum(dim=2) @ torch.arange(images.shape[-2], dtype=torch.float64) / total
    cols = mass.sum(dim=1) @ torch.arange(images.shape[-1], dtype=torch.float64) / total
    return torch.stack([rows, cols], dim=1)


def _digits(count: int = 3, seed: int = 0) -> torch.Tensor:
    """Blobs of ink in a 20x20 box, each moved so that its mass sits at MNIST's (14, 14)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, 28, 28)
    images[:, :, 4:24, 6:22] = (torch.rand(count, 1, 20, 16, generator=generator) > 0.6).float()
    return recentre(images, MNIST_CENTRE)


@pytest.mark.parametrize("quarter_turns", range(4))
def test_mass_position_is_where_a_quarter_turn_takes_the_mnist_centre(quarter_turns: int) -> None:
    dot = torch.zeros(28, 28)
    dot[int(MNIST_CENTRE[0]), int(MNIST_CENTRE[1])] = 1.0
    turned = rotate(dot, 90.0 * quarter_turns)
    index = int(turned.argmax())
    assert mass_position(quarter_turns) == (index // 28, index % 28)
    assert [mass_position(k) for k in range(4)] == [(14, 14), (13, 14), (13, 13), (14, 13)]


def test_recentre_moves_each_image_by_whole_pixels_to_the_nearest_place() -> None:
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 3:8, 2:7] = 1.0  # mass at (5, 4)
    images[1, 0, 20:27, 21:26] = torch.rand(7, 5)
    moved = recentre(images, (13.0, 13.0))
    for before, after in zip(images, moved, strict=True):  # the same pixel values: nothing lost, nothing blurred
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)
    assert ((_centre_of_mass(moved) - 13.0).abs() <= 0.5).all()
    assert torch.equal(moved[0, 0, 11:16, 11:16], images[0, 0, 3:8, 2:7])  # moved by (8, 9) exactly
    blank = torch.zeros(1, 1, 28, 28)
    assert torch.equal(recentre(blank, (13.0, 13.0)), blank)


def test_mass_quarter_turn_says_which_quarter_turn_of_a_centred_digit_an_input_is() -> None:
    digits = _digits()
    for k in range(4):
        assert mass_quarter_turn(torch.rot90(digits, k, dims=(-2, -1))).tolist() == [k] * 3
    off_centre = recentre(digits, (6.0, 20.0))
    assert mass_quarter_turn(torch.cat([off_centre, torch.zeros(1, 1, 28, 28)])).tolist() == [-1] * 4


@pytest.fixture(scope="module")
def network() -> GroupEquivariantCNN:
    torch.manual_seed(0)
    model = create_model("gcnn_c8_pose").eval()
    assert isinstance(model, GroupEquivariantCNN)
    return model


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_centred_reading_turns_with_the_input_at_every_quarter_turn(
    network: GroupEquivariantCNN, quarter_turns: int
) -> None:
    """Each copy's mass position turns into another's, so the mixture turns with the input; the lean turns
    with ``upright``. Float32 forward passes: measured up to 3.4e-6 apart here, tolerance 1e-4."""
    digits = _digits()
    with torch.inference_mode():
        upright = centred_pose(network, digits).log_joint
        turned = centred_pose(
            network, torch.rot90(digits, quarter_turns, dims=(-2, -1)), upright=90.0 * quarter_turns
        ).log_joint
    shift = quarter_turns * ANGLE_STEPS // 4
    assert torch.allclose(turned, upright.roll(shift, dims=2), atol=1e-4)


def test_centred_reading_is_a_distribution_over_digit_and_angle(network: GroupEquivariantCNN) -> None:
    with torch.inference_mode():
        pose = centred_pose(network, _digits())
    assert torch.allclose(pose.log_joint.exp().sum(dim=(1, 2)), torch.ones(3, dtype=torch.float64), atol=1e-9)


def test_predict_centred_reads_rows_at_a_mass_position_without_the_cue_and_others_as_they_are(
    network: GroupEquivariantCNN,
) -> None:
    digits = _digits(4)
    rows = torch.cat([digits[:2], torch.rot90(digits[2:3], 2, dims=(-2, -1)), recentre(digits[3:], (6.0, 20.0))])
    with torch.inference_mode():
        answer = predict_centred(network, rows)
        centred = centred_pose(network, rows[:3], upright=torch.tensor([0.0, 0.0, 180.0]))
        plain = network.predict(rows[3:])
    assert answer.pose is not None and plain.pose is not None
    assert torch.allclose(answer.pose.log_joint[:3], centred.log_joint, atol=1e-6)
    assert torch.allclose(answer.pose.log_joint[3:], plain.pose.log_joint, atol=1e-6)
    assert torch.allclose(answer.probabilities, answer.pose.digit_probabilities.float(), atol=1e-6)


def test_a_network_without_a_pose_reads_every_row_as_it_is() -> None:
    torch.manual_seed(0)
    cnn = create_model("cnn").eval()
    assert isinstance(cnn, BaselineCNN)
    digits = _digits()
    with torch.inference_mode():
        answer, plain = predict_centred(cnn, digits), cnn.predict(digits)
    assert answer.pose is None and torch.equal(answer.probabilities, plain.probabilities)
    with pytest.raises(ValueError, match="pose"):
        centred_pose(cnn, digits)


def test_predict_centred_leans_as_strongly_as_it_is_told(network: GroupEquivariantCNN) -> None:
    digits = _digits()
    with torch.inference_mode():
        for lean in (0.0, 0.5, CENTRING_CONCENTRATION):
            answer = predict_centred(network, digits, lean)
            assert answer.pose is not None
            torch.testing.assert_close(
                answer.pose.log_joint, centred_pose(network, digits, concentration=lean).log_joint
            )


def test_the_chosen_lean_is_the_cards_else_the_served_networks() -> None:
    assert chosen_lean({"name": "m"}) == CENTRING_CONCENTRATION
    assert chosen_lean({"centred_reading": {"lean": 0.5, "rule": "..."}}) == 0.5
    assert chosen_lean({"centred_reading": {"lean": 0}}) == 0.0
    for card in (
        {"centred_reading": {}},
        {"centred_reading": None},
        {"centred_reading": 0.5},
        {"centred_reading": {"lean": float("inf")}},
        {"centred_reading": {"lean": 10**400}},
    ):
        with pytest.raises(ValueError, match="finite number >= 0"):
            chosen_lean(card)
