"""Canonicalisation by the principal axis (model.canonical): the axis turns with the image at every angle,
the canonical image is the same up to a half turn, and a network reading it is exact at quarter turns and far
closer to invariance between them than the same network reading the raw input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from model.canonical import canonicalize, centre_of_mass, principal_angle, upright_turn
from model.equivariance import equivariance_errors, turned_cleanly
from model.networks import GroupEquivariantCNN
from model.orientation import JointHead, shifted_profile
from model.registry import create_model
from tests.helpers import moved
from tests.model.test_equivariance import blobs


def bar(degrees: float, size: int = 28) -> torch.Tensor:
    """A Gaussian bar through the image centre whose long axis points ``degrees`` counter-clockwise from x."""
    centre = (size - 1) / 2
    rows, cols = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij"
    )
    x, y = cols - centre, centre - rows
    theta = math.radians(degrees)
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    return torch.exp(-(along**2) / 40 - across**2 / 3)[None, None].float()  # (1, 1, H, W)


def half_turn_apart(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, the smaller of ``||a - b||`` and ``||a - rot180(b)||`` over ``||b||``."""
    direct = (a - b).flatten(1).norm(dim=1)
    flipped = (a - torch.rot90(b, 2, dims=(-2, -1))).flatten(1).norm(dim=1)
    return torch.minimum(direct, flipped) / b.flatten(1).norm(dim=1)


@pytest.mark.parametrize("degrees", [0.0, 20.0, 45.0, 89.0, -30.0])
def test_principal_angle_of_a_bar_is_the_bar_s_direction(degrees: float) -> None:
    assert principal_angle(bar(degrees)).item() == pytest.approx(degrees, abs=0.05)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_principal_angle_moves_by_the_quarter_turn_exactly(quarter_turns: int) -> None:
    x = blobs()
    turned = principal_angle(torch.rot90(x, quarter_turns, dims=(-2, -1)))
    moved = torch.remainder(turned - principal_angle(x) - 90 * quarter_turns + 90, 180) - 90
    assert moved.abs().max() <= 1e-9


@pytest.mark.parametrize("degrees", [10.0, 22.5, 45.0, 137.0])
def test_principal_angle_turns_with_the_image_between_quarter_turns(degrees: float) -> None:
    x = blobs()
    moved = principal_angle(turned_cleanly(x, degrees)) - principal_angle(turned_cleanly(x, 0.0)) - degrees
    moved = torch.remainder(moved + 90, 180) - 90
    assert moved.abs().max() <= 0.1  # measured: at most 0.022° on these images


def test_upright_turn_stands_the_axis_vertical() -> None:
    images = torch.cat([bar(d) for d in (0.0, 30.0, 80.0, -60.0)])
    assert upright_turn(images).tolist() == pytest.approx([-90.0, 60.0, 10.0, -30.0], abs=0.05)
    turned, _ = canonicalize(images)
    assert principal_angle(turned).abs().tolist() == pytest.approx([90.0] * 4, abs=0.5)


def test_an_image_without_ink_stays_empty_and_finite() -> None:
    empty = torch.zeros(2, 1, 28, 28)
    turned, turn = canonicalize(empty)
    assert principal_angle(empty).tolist() == [0.0, 0.0]
    assert torch.isfinite(turn).all()
    assert torch.equal(turned, empty)


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_canonical_image_of_a_quarter_turned_input_is_the_same_up_to_a_half_turn(
    quarter_turns: int, centred: bool
) -> None:
    x = blobs()
    upright, _ = canonicalize(x, centred)
    turned, _ = canonicalize(torch.rot90(x, quarter_turns, dims=(-2, -1)), centred)
    assert half_turn_apart(turned, upright).max() <= 1e-5


def test_centred_canonical_image_has_its_ink_on_the_image_centre() -> None:
    x = moved(blobs(), 2, -3)
    centred, _ = canonicalize(x, centred=True)
    assert (centre_of_mass(centred) - 13.5).abs().max() <= 0.02  # measured: 0.0015 (the 2x resampling)
    assert (centre_of_mass(canonicalize(x)[0]) - 13.5).abs().max() >= 2  # turned about the image centre


@pytest.mark.parametrize(("dy", "dx"), [(0, -1), (1, 0), (-2, 1)])
def test_centred_canonical_image_is_the_same_wherever_the_input_sits(dy: int, dx: int) -> None:
    x = blobs()
    here, turn = canonicalize(x, centred=True)
    there, turn_there = canonicalize(moved(x, dy, dx), centred=True)
    assert (turn - turn_there).abs().max() <= 0.02  # about the centre of mass; measured: <= 0.014° (the blobs' tails)
    assert half_turn_apart(there, here).max() <= 0.005  # measured: <= 0.0006 (bilinear reads other points)
    uncentred = half_turn_apart(canonicalize(moved(x, dy, dx))[0], canonicalize(x)[0])
    assert uncentred.min() >= 0.1  # turned about the image centre; measured: >= 0.22 apart


def test_canonical_image_commutes_with_the_mirror() -> None:
    x = blobs()
    upright, _ = canonicalize(x)
    mirrored, _ = canonicalize(torch.flip(x, dims=(-1,)))
    assert half_turn_apart(mirrored, torch.flip(upright, dims=(-1,))).max() <= 1e-5


@pytest.mark.parametrize("degrees", [22.5, 45.0])
def test_canonical_image_of_a_turned_input_is_the_same_up_to_interpolation(degrees: float) -> None:
    x = blobs()
    upright, _ = canonicalize(turned_cleanly(x, 0.0))
    turned, _ = canonicalize(turned_cleanly(x, degrees))
    assert half_turn_apart(turned, upright).max() <= 0.01  # measured: <= 0.0042 on these images


def test_canonicalising_network_is_exact_at_quarter_turns_and_twenty_times_closer_between_them() -> None:
    torch.manual_seed(0)
    canonical = equivariance_errors(create_model("gcnn_c8_canon"), blobs(), (90.0, 45.0, 22.5))
    torch.manual_seed(0)
    raw = equivariance_errors(create_model("gcnn_c8_blur"), blobs(), (45.0, 22.5))
    assert max(canonical[90.0]) <= 1e-5
    for angle in (45.0, 22.5):  # measured on these images (untrained): the logits' error 46x / 74x lower
        assert canonical[angle][-1] * 20 <= raw[angle][-1]


@pytest.mark.parametrize("overrides", [{"group": "C5"}, {"group": "D3"}])
def test_canonicalising_network_refuses_what_it_cannot_read_exactly(overrides: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="canonicalize"):
        create_model("gcnn_c8_canon", **overrides)


def test_centring_without_canonicalising_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical_centred"):
        create_model("gcnn_c8_blur", canonical_centred=True)


def pose_network(name: str) -> GroupEquivariantCNN:
    """A fresh canonicalising network with a pose, eval mode; a gated pose's gate far from 1 (model.pose_gate)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert isinstance(model, GroupEquivariantCNN) and isinstance(model.head, JointHead)
    for gate in model.head.gates:
        nn.init.normal_(gate.mlp[2].weight, std=0.5)
    return model


POSE_NETWORKS = [
    "gcnn_c8_canon_pose",
    "gcnn_c8_canon_pose_gated",
    "gcnn_c8_canon_pose_gated_max",
    "gcnn_c8_canon_pose_gated_max_x5",
    "gcnn_c8_canon_pose_centred",
]


@pytest.mark.parametrize("name", POSE_NETWORKS)
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_canonicalising_pose_turns_with_the_input_by_quarter_turns(quarter_turns: int, name: str) -> None:
    model = pose_network(name)
    x = blobs()
    with torch.no_grad():
        upright = model.forward_pose(x).log_joint  # (B, D, 360): one angle per degree
        turned = model.forward_pose(torch.rot90(x, quarter_turns, dims=(-2, -1))).log_joint
    assert torch.allclose(turned, upright.roll(90 * quarter_turns, dims=2), atol=1e-4)


@pytest.mark.parametrize("name", POSE_NETWORKS)
@pytest.mark.parametrize("degrees", [22.5, 45.0])
def test_canonicalising_pose_turns_with_the_input_between_quarter_turns(degrees: float, name: str) -> None:
    model = pose_network(name)
    x = blobs()
    with torch.no_grad():
        upright = model.forward_pose(turned_cleanly(x, 0.0)).orientation().degrees
        turned = model.forward_pose(turned_cleanly(x, degrees)).orientation().degrees
    moved = torch.remainder(turned - upright - degrees + 180, 360) - 180
    assert moved.abs().max() <= 0.5  # measured (untrained): at most 0.05°


def test_shifted_profile_reads_the_profile_further_on_by_the_turn() -> None:
    torch.manual_seed(0)
    coefficients = torch.randn(3, 10, 2, 2, dtype=torch.float64)  # (B, D, M, 2)
    tau = torch.tensor([30.0, -75.0, 137.0], dtype=torch.float64)
    theta = torch.deg2rad(torch.arange(0.0, 360.0, 15.0, dtype=torch.float64))  # (A,)
    m = torch.arange(1, 3, dtype=torch.float64)

    def profile(values: torch.Tensor, radians: torch.Tensor) -> torch.Tensor:  # (B, D, A) at (B, A) angles
        phase = radians[:, None, :] * m[None, :, None]  # (B, M, A)
        return torch.einsum("bdm,bma->bda", values[..., 0], torch.cos(phase)) + torch.einsum(
            "bdm,bma->bda", values[..., 1], torch.sin(phase)
        )

    shifted = profile(shifted_profile(coefficients, tau), theta.expand(3, -1))
    further = profile(coefficients, theta[None] + torch.deg2rad(tau)[:, None])  # l(theta + tau)
    assert torch.allclose(shifted, further, atol=1e-12)


def test_canonicalising_joint_scores_are_the_plain_network_s_on_the_turned_input_shifted_back() -> None:
    torch.manual_seed(0)
    model = create_model("gcnn_c8_canon_pose").eval()
    plain = create_model("gcnn_c8_canon_pose", canonicalize=False).eval()
    plain.load_state_dict(model.state_dict())
    x = blobs()
    with torch.no_grad():
        turned, turn = canonicalize(x)
        digits, coefficients = plain.head.digit_and_pose(plain.forward_features(turned))
        expected = plain.head.scores(digits, shifted_profile(coefficients, turn))
        assert torch.allclose(model.forward_joint(x), expected, atol=1e-5)
        assert not torch.allclose(model.forward_joint(x), plain.head.scores(digits, coefficients), atol=1e-3)
