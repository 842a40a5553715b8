"""Equivariance of every layer under every group element: layer(g.x) == g.layer(x).

Exact elements (quarter turns and mirrors, C4 and D4) are index permutations,
so the only error is float32 rounding: max abs error <= 1e-5 on random inputs.

45-degree elements (C8, D8) need interpolation of the input; they are tested on
smooth inputs in the centre region. Measured (these fixed seeds): the max error
in the centre is 3.7-6.1% of the output's max for the harmonic (steerable)
basis over every 45-degree element of C8 and D8, lifting and lifting + group
conv; the tolerance is 8%. The free grid basis (square 5x5 filters rotated
bilinearly, corners clipped) is 13x worse on the same input (9.8-17x over other
seeds); the test asks for at least 8x.
"""

from __future__ import annotations

import pytest
import torch

from model.groups import Group, cyclic, dihedral, get_group
from model.layers import GroupBatchNorm, GroupConv2d, GroupPool, LiftingConv2d
from tests.helpers import centre, smooth_images

EXACT = [cyclic(4), dihedral(4)]
INEXACT = [cyclic(8), dihedral(8)]
BASES = ["grid", "harmonic", "disc"]
HARMONIC_TOLERANCE = 0.08
GRID_OVER_HARMONIC = 8.0


def cases(groups: list[Group], inexact_only: bool = False) -> list:
    return [
        pytest.param(
            group, g, id=f"{group.name}-element{g}-{group.degrees(g):g}deg{'-mirror' if group.is_reflection(g) else ''}"
        )
        for group in groups
        for g in group.elements()
        if not (inexact_only and group.is_exact(g))
    ]


def lifting(group: Group, basis: str) -> LiftingConv2d:
    torch.manual_seed(0)
    return LiftingConv2d(2, 3, 5, group=group, padding=2, basis=basis)


def group_conv(group: Group, basis: str) -> GroupConv2d:
    torch.manual_seed(1)
    return GroupConv2d(3, 4, 5, group=group, padding=2, basis=basis)


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize(("group", "g"), cases(EXACT))
def test_lifting_conv_exact(group: Group, g: int, basis: str) -> None:
    layer, x = lifting(group, basis), torch.randn(2, 2, 13, 13)
    error = (layer(group.transform_images(x, g)) - group.transform_feature_maps(layer(x), g)).abs().max()
    assert error <= 1e-5


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize(("group", "g"), cases(EXACT))
def test_group_conv_exact(group: Group, g: int, basis: str) -> None:
    layer, x = group_conv(group, basis), torch.randn(2, 3, group.order, 13, 13)
    error = (layer(group.transform_feature_maps(x, g)) - group.transform_feature_maps(layer(x), g)).abs().max()
    assert error <= 1e-5


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("group", "g"), cases([cyclic(4)]))
def test_unpadded_and_strided_convs_on_matching_sizes(group: Group, g: int, stride: int) -> None:
    # 15 -> 11 -> 7 (no padding); stride 2 on 15 -> 6 keeps the grid centred too
    lift = LiftingConv2d(1, 2, 5, group=group, stride=stride)
    x = torch.randn(1, 1, 15, 15)
    error = (lift(group.transform_images(x, g)) - group.transform_feature_maps(lift(x), g)).abs().max()
    assert error <= 1e-5


@pytest.mark.parametrize(("group", "g"), cases(EXACT))
@pytest.mark.parametrize("mode", ["max", "mean"])
def test_group_pool_is_invariant_in_the_group_axis(group: Group, g: int, mode: str) -> None:
    pool, x = GroupPool(mode), torch.randn(2, 3, group.order, 9, 9)
    assert torch.allclose(pool(group.transform_feature_maps(x, g)), group.transform_images(pool(x), g), atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("group", "g"), cases(EXACT))
def test_group_batch_norm(group: Group, g: int, training: bool) -> None:
    norm = GroupBatchNorm(3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
        norm.running_mean.uniform_(-1.0, 1.0)
        norm.running_var.uniform_(0.5, 2.0)
    norm.train(training)
    x = torch.randn(4, 3, group.order, 7, 7)
    error = (norm(group.transform_feature_maps(x, g)) - group.transform_feature_maps(norm(x), g)).abs().max()
    assert error <= 1e-5


@pytest.mark.parametrize(("group", "g"), cases(INEXACT, inexact_only=True))
def test_harmonic_lifting_and_group_conv_at_45_degrees(group: Group, g: int) -> None:
    lift, conv = lifting(group, "harmonic"), group_conv(group, "harmonic")
    x = smooth_images(2, 2, 33, sigma=1.5)
    for layer, before, after in (
        (lift, lambda t: group.transform_images(t, g), lift(x)),
        (lambda t: conv(lift(t)), lambda t: group.transform_images(t, g), conv(lift(x))),
    ):
        expected = group.transform_feature_maps(after, g)
        error = centre(layer(before(x)) - expected, 8).abs().max()
        assert error <= HARMONIC_TOLERANCE * centre(expected, 8).abs().max()


def test_harmonic_basis_rotates_filters_better_than_the_grid_basis() -> None:
    group, g = cyclic(8), 1  # 45 degrees
    x = smooth_images(2, 2, 33, sigma=1.5)
    errors = {}
    for basis in BASES:
        layer = lifting(group, basis)
        expected = group.transform_feature_maps(layer(x), g)
        errors[basis] = (
            centre(layer(group.transform_images(x, g)) - expected, 8).abs().max() / expected.abs().max()
        ).item()
    assert errors["grid"] >= GRID_OVER_HARMONIC * errors["harmonic"], errors


def test_output_shapes_and_conv2d_like_signature() -> None:
    c8 = get_group("C8")
    lift = LiftingConv2d(1, 6, 5, group=c8, stride=1, padding=0, bias=False)
    out = lift(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 6, 8, 24, 24)
    conv = GroupConv2d(6, 4, 3, group=c8, padding=1)
    assert conv(out).shape == (2, 4, 8, 24, 24)
    assert "group=C8" in repr(conv) and "kernel_size=3" in repr(conv)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kernel_size=4), "odd"),
        (dict(in_channels=0), "in_channels"),
        (dict(padding=-1), "padding"),
        (dict(basis="fourier"), "basis"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs: dict, message: str) -> None:
    arguments = dict(in_channels=1, out_channels=2, kernel_size=3, group=cyclic(4)) | kwargs
    with pytest.raises(ValueError, match=message):
        LiftingConv2d(**arguments)


def test_wrong_input_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected"):
        GroupConv2d(2, 2, 3, group=cyclic(4))(torch.randn(1, 2, 8, 5, 5))
