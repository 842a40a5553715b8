"""The joint (digit, rotation) head: equivariant scores, an invariant digit, an orientation that turns with it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.groups import get_group
from model.networks import GroupEquivariantCNN
from model.orientation import (
    ANGLE_STEPS,
    JointHead,
    Pose,
    Reading,
    angles,
    is_ambiguous,
    upright_prior,
)
from model.registry import create_model
from model.train import loss_and_logits

# The permutation is exact in exact arithmetic: in float64 the 1e-5 holds with room to spare. In float32
# (as served), measured over 40 random inputs per quarter turn on these untrained networks, whose flat pose
# profiles are the most sensitive case: joint log-probabilities within 1.3e-5 of the shifted ones, angles
# within 1.9e-3 degrees. The float32 tolerances are about 4x and 5x that.
EXACT_TOLERANCE = 1e-5
JOINT_TOLERANCE = 5e-5
DEGREES_TOLERANCE = 1e-2


def pose_network(group: str, dtype: torch.dtype = torch.float32, name: str = "gcnn_c8_pose") -> GroupEquivariantCNN:
    torch.manual_seed(0)
    frequencies = 1 if group == "C4" else 2  # below the Nyquist frequency N/2
    model = create_model(name, group=group, hidden_channels=4, pose_frequencies=frequencies)
    model.to(dtype).train()
    with torch.no_grad():
        model(torch.rand(16, 1, 28, 28, dtype=dtype))  # batch-norm statistics that are not the identity
    return model.eval()  # type: ignore[return-value]


def quarter_turns(group: str) -> list:
    n = get_group(group).rotations
    return [pytest.param(group, k * n // 4, id=f"{group}-r{k * n // 4}") for k in range(4)]


def circular_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a - b + 180.0, 360.0) - 180.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("group", "g"), quarter_turns("C4") + quarter_turns("C8"))
def test_joint_scores_move_along_the_element_axis_under_quarter_turns(group: str, g: int, dtype: torch.dtype) -> None:
    model, symmetry = pose_network(group, dtype), get_group(group)
    x = torch.rand(3, 1, 28, 28, dtype=dtype)
    with torch.no_grad():
        joint, turned = model.forward_joint(x), model.forward_joint(symmetry.transform_images(x, g))
    assert joint.shape == (3, 10, symmetry.order)
    assert torch.allclose(joint.exp().sum(dim=(1, 2)), torch.ones(3, dtype=dtype), atol=1e-5)
    tolerance = EXACT_TOLERANCE if dtype == torch.float64 else JOINT_TOLERANCE
    assert (turned - torch.roll(joint, shifts=g, dims=2)).abs().max() <= tolerance


@pytest.mark.parametrize("name", ["gcnn_c8_pose", "gcnn_c8_blur_pose"])
@pytest.mark.parametrize(("group", "g"), quarter_turns("C4") + quarter_turns("C8"))
def test_digit_marginal_is_invariant_and_orientation_moves_by_the_element_angle(group: str, g: int, name: str) -> None:
    model, symmetry = pose_network(group, name=name), get_group(group)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        pose, turned = model.forward_pose(x), model.forward_pose(symmetry.transform_images(x, g))
        logits, turned_logits = model(x), model(symmetry.transform_images(x, g))
    assert (logits - turned_logits).abs().max() <= JOINT_TOLERANCE
    assert torch.allclose(pose.digit_probabilities, torch.softmax(logits.double(), dim=1), atol=1e-6)
    before, after = pose.orientation(), turned.orientation()
    assert torch.equal(before.digits, after.digits)
    moved = circular_difference(after.degrees, before.degrees + symmetry.degrees(g))
    assert moved.abs().max() <= DEGREES_TOLERANCE
    assert torch.allclose(before.confidence, after.confidence, atol=1e-6)


def test_readings_turn_with_the_input_and_partition_the_probability() -> None:
    model, symmetry = pose_network("C8"), get_group("C8")
    x = torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        pose, turned = model.forward_pose(x), model.forward_pose(symmetry.transform_images(x, 2))
    every = pose.readings(0, top=10 * ANGLE_STEPS)
    assert sum(reading.probability for reading in every) == pytest.approx(1.0, abs=1e-9)
    assert [r.probability for r in every[1:]] == sorted((r.probability for r in every[1:]), reverse=True)
    for reading, moved in zip(pose.readings(0), turned.readings(0), strict=True):
        assert reading.digit == moved.digit and moved.probability == pytest.approx(reading.probability, abs=1e-6)
        assert abs(float(circular_difference(torch.tensor(moved.degrees), torch.tensor(reading.degrees + 90.0)))) < 1e-3


def test_the_answered_digit_and_its_orientation_are_the_most_probable_ones() -> None:
    # a hand-made distribution: digit 6 at 30 degrees (0.7), digit 9 at 210 degrees (0.3)
    degrees = angles()
    row = lambda centre: 8.0 * torch.cos(torch.deg2rad(degrees - centre))  # noqa: E731
    log_joint = torch.full((1, 10, ANGLE_STEPS), -math.inf, dtype=torch.float64)
    log_joint[0, 6] = math.log(0.7) + torch.log_softmax(row(30.0), dim=0)
    log_joint[0, 9] = math.log(0.3) + torch.log_softmax(row(210.0), dim=0)
    pose = Pose(get_group("C8"), log_joint)
    orientation = pose.orientation()
    assert int(orientation.digits[0]) == 6 and float(orientation.degrees[0]) == pytest.approx(30.0, abs=1e-3)
    readings = pose.readings(0)
    assert [(r.digit, round(r.degrees, 3)) for r in readings[:2]] == [(6, 30.0), (9, 210.0)]
    assert readings[0].probability == pytest.approx(0.7) and readings[1].probability == pytest.approx(0.3)
    assert is_ambiguous(readings) and not is_ambiguous(readings, share=0.5)
    assert pose.top_readings().ambiguous().tolist() == [True]
    upright = pose.with_prior(upright_prior(degrees))
    assert upright.digit_probabilities[0, 6] > pose.digit_probabilities[0, 6]  # 30 degrees is nearer upright


def constructed_pose(peaks: dict[int, list[tuple[float, float]]]) -> Pose:
    """One input whose digits have these ``(degrees, mass)`` peaks (narrow von Mises bumps); other digits impossible."""
    degrees = angles()
    log_joint = torch.full((1, 10, ANGLE_STEPS), -math.inf, dtype=torch.float64)
    for digit, bumps in peaks.items():
        density = sum(
            mass * torch.softmax(8.0 * torch.cos(torch.deg2rad(degrees - centre)), dim=0) for centre, mass in bumps
        )
        log_joint[0, digit] = torch.log(density)  # type: ignore[arg-type]
    return Pose(get_group("C8"), log_joint)


def test_the_answered_digits_reading_comes_first_and_is_the_one_the_orientation_describes() -> None:
    # the 7 is the most probable digit (0.45) but its mass is split between two peaks; the 2's one peak (0.40)
    # outweighs each of them
    pose = constructed_pose({7: [(0.0, 0.25), (180.0, 0.20)], 2: [(60.0, 0.40)], 1: [(270.0, 0.15)]})
    orientation, readings = pose.orientation(), pose.readings(0)
    assert int(orientation.digits[0]) == 7 == readings[0].digit
    assert float(orientation.degrees[0]) == readings[0].degrees == pytest.approx(0.0, abs=1e-3)
    assert [(r.digit, round(r.degrees, 3)) for r in readings] == [(7, 0.0), (2, 60.0), (7, 180.0)]
    assert [r.probability for r in readings] == pytest.approx([0.25, 0.40, 0.20], abs=1e-3)
    assert pose.top_readings().ambiguous().tolist() == [True]  # the 2 holds 1.6 times the answered reading


@pytest.mark.parametrize(
    ("peaks", "ambiguous"),
    [
        pytest.param(
            {7: [(0.0, 0.5), (180.0, 0.3)], 2: [(40.0, 0.15)], 1: [(270.0, 0.05)]}, True, id="other-digit-third"
        ),
        pytest.param({7: [(0.0, 0.6), (180.0, 0.36)], 2: [(40.0, 0.04)]}, False, id="other-digit-below-share"),
        pytest.param(
            {7: [(0.0, 0.4), (120.0, 0.27), (240.0, 0.2)], 2: [(60.0, 0.08)], 1: [(300.0, 0.05)]},
            True,
            id="other-digit-fourth-not-listed",
        ),
        pytest.param({7: [(0.0, 0.7), (180.0, 0.3)]}, False, id="one-digit-two-peaks"),
    ],
)
def test_ambiguous_means_any_other_digits_reading_holds_the_share(
    peaks: dict[int, list[tuple[float, float]]], ambiguous: bool
) -> None:
    pose = constructed_pose(peaks)
    assert pose.top_readings().ambiguous().tolist() == [ambiguous]
    assert pose.top_readings(2).ambiguous().tolist() == [ambiguous]  # however few readings are listed
    assert is_ambiguous(pose.readings(0, top=10 * ANGLE_STEPS)) is ambiguous


def test_upright_prior_is_a_soft_von_mises_weight() -> None:
    weights = upright_prior(torch.tensor([0.0, 45.0, 90.0, 180.0])).exp()
    assert weights[0] == 1.0
    assert weights.tolist() == pytest.approx([1.0, 0.557, 0.135, 0.0183], abs=1e-3)


def test_ambiguity_needs_two_digits() -> None:
    assert not is_ambiguous([Reading(1, 0.0, 0.5), Reading(1, 180.0, 0.5)])  # a 1 either way up is still a 1
    assert is_ambiguous([Reading(6, 0.0, 0.5), Reading(9, 180.0, 0.1)])
    assert not is_ambiguous([Reading(6, 0.0, 0.5), Reading(9, 180.0, 0.04)])


def test_training_asks_for_the_label_at_the_identity() -> None:
    model = pose_network("C8").train()
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 6, 9])
    loss, logits = loss_and_logits(model, x, labels)
    joint = model.forward_joint(x)
    expected = -joint[torch.arange(4), labels, 0].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, torch.logsumexp(joint, dim=2), atol=1e-5)
    loss.backward()
    head = model.head
    assert isinstance(head, JointHead) and head.pose.grad is not None and head.pose.grad.abs().sum() > 0


def test_invariant_networks_have_no_orientation() -> None:
    with pytest.raises(ValueError, match="no orientation"):
        create_model("gcnn_c8_wide").forward_joint(torch.rand(1, 1, 28, 28))  # type: ignore[operator]


@pytest.mark.parametrize(("group", "frequencies"), [("D4", 1), ("C8", 0), ("C8", 4), ("C4", 2)])
def test_joint_head_needs_a_cyclic_group_and_a_band_limit_below_nyquist(group: str, frequencies: int) -> None:
    with pytest.raises(ValueError):
        JointHead(4, 10, get_group(group), frequencies)
    with pytest.raises(ValueError, match="pool"):
        JointHead(4, 10, get_group("C8"), 2, pool="median")


@pytest.mark.parametrize("g", range(1, 8))
def test_head_pooling_space_by_mean_and_max_moves_its_scores_along_the_element_axis(g: int) -> None:
    torch.manual_seed(0)
    head = JointHead(4, 10, get_group("C8"), 3, pool="mean_max").double()
    mean_only = JointHead(4, 10, get_group("C8"), 3).double()
    x = torch.rand(3, 4, 8, 5, 5, dtype=torch.float64)  # (B, C, G, H, W)
    turned = x.roll(g, dims=2).rot90(1, dims=(-2, -1))  # the element axis shifted, space turned
    with torch.no_grad():
        assert head.per_element(x).shape == (3, 8, 8)  # C mean channels, then C max channels
        assert torch.equal(head.per_element(x)[:, 4:], x.amax(dim=(-2, -1)))
        # exact but for the head's float32 cos/sin tables (measured: 3e-15 at g = 1 in float64 arithmetic)
        assert (head(turned) - head(x).roll(g, dims=2)).abs().max() <= 1e-7
        peaked = x.clone()
        peaked[:, :, :, 0, 0] += 1.0  # the maxima change more than the means
        peaked[:, :, :, 4, 4] -= 1.0  # and the means not at all
        assert torch.allclose(mean_only(peaked), mean_only(x), atol=1e-12)
        assert (head(peaked) - head(x)).abs().max() > 1e-3  # the max channels are read


@pytest.mark.parametrize("g", [2, 4, 6])
def test_network_whose_pose_pools_space_by_mean_and_max_moves_its_joint_scores_under_quarter_turns(g: int) -> None:
    torch.manual_seed(0)
    model = create_model("gcnn_c8_pose", hidden_channels=4, pose_frequencies=3, pose_pool="mean_max")
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 28, 28))
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        joint = model.forward_joint(x)  # type: ignore[operator]
        turned = model.forward_joint(get_group("C8").transform_images(x, g))  # type: ignore[operator]
    assert (turned - joint.roll(g, dims=2)).abs().max() <= JOINT_TOLERANCE


def test_joint_head_loss_is_the_negative_log_likelihood_of_p_digit_times_p_pose_given_digit() -> None:
    torch.manual_seed(0)
    head, group = JointHead(3, 10, get_group("C8")).double().requires_grad_(False), get_group("C8")
    features = torch.randn(5, 3, 8, 7, 7, dtype=torch.float64)
    joint = head(features)
    assert torch.allclose(torch.logsumexp(joint.flatten(1), dim=1), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    # by hand, from the formulas of model.orientation: p(d) = softmax(A . inv), inv(c) = mean_x max_g F;
    # Z_cm = mean_g z(c, g) e^{i m theta_g}, V_dm = sum_c W_dcm Z_cm, l_d(theta) = sum_m Re(V_dm e^{-i m theta})
    p_digit = torch.softmax(head.invariant(features.amax(dim=2).mean(dim=(-2, -1))), dim=1)  # (B, D)
    theta = torch.tensor([group.radians(g) for g in group.elements()], dtype=torch.float64)  # (N,)
    m = torch.arange(1, head.frequencies + 1, dtype=torch.float64)  # (M,)
    z = (
        torch.einsum(
            "bcg,gm->bcm", features.mean(dim=(-2, -1)).to(torch.complex128), torch.exp(1j * theta[:, None] * m)
        )
        / 8
    )
    v = torch.einsum("dcm,bcm->bdm", torch.complex(head.pose[0, 0], head.pose[0, 1]), z)  # (B, D, M): one reader
    profile = torch.einsum("bdm,gm->bdg", v, torch.exp(-1j * theta[:, None] * m)).real  # (B, D, N)
    p_pose = profile.exp() / profile.exp().sum(dim=2, keepdim=True)
    target = [(0, 0), (2, 1), (5, 2), (9, 7), (1, 0)]  # (digit, element) per input
    by_hand = -sum(math.log(p_digit[b, d] * p_pose[b, d, g]) for b, (d, g) in enumerate(target)) / len(target)
    cells = torch.tensor([d * group.order + g for d, g in target])
    # the head's cos/sin tables are float32 (as served): agreement to 3e-11 measured, to 1e-9 asked
    assert F.nll_loss(joint.flatten(1), cells).item() == pytest.approx(by_hand, rel=1e-9)
