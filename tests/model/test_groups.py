"""Group axioms and the consistency of every action, for C_1..C_8 and D_1..D_8."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from model.groups import GROUP_KINDS, Group, PlanarGroup, cyclic, dihedral, get_group, register_group_kind

GROUPS = [cyclic(n) for n in range(1, 9)] + [dihedral(n) for n in range(1, 9)]
EXACT_GROUPS = [cyclic(1), cyclic(2), cyclic(4), dihedral(1), dihedral(2), dihedral(4)]


def ids(group: Group) -> str:
    return group.name


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_order(group: Group) -> None:
    assert group.order == len(group.elements()) == group.rotations * (2 if group.reflections else 1)


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_identity(group: Group) -> None:
    e = group.identity
    for g in group.elements():
        assert group.compose(e, g) == g == group.compose(g, e)


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_inverse(group: Group) -> None:
    for g in group.elements():
        assert group.compose(g, group.inverse(g)) == group.identity == group.compose(group.inverse(g), g)


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_closure(group: Group) -> None:
    members = set(group.elements())
    for a, b in itertools.product(group.elements(), repeat=2):
        assert group.compose(a, b) in members
    # every row of the Cayley table is a permutation (Latin square)
    for row in group.cayley_table.tolist():
        assert sorted(row) == list(group.elements())


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_associativity_over_all_triples(group: Group) -> None:
    for a, b, c in itertools.product(group.elements(), repeat=3):
        assert group.compose(group.compose(a, b), c) == group.compose(a, group.compose(b, c)), (a, b, c)


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_matrix_is_a_homomorphism(group: Group) -> None:
    for a, b in itertools.product(group.elements(), repeat=2):
        product = group.matrix(a) @ group.matrix(b)
        torch.testing.assert_close(group.matrix(group.compose(a, b)), product, atol=1e-12, rtol=0)
    torch.testing.assert_close(group.matrix(group.identity), torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("group", GROUPS, ids=ids)
def test_matrices_are_orthogonal_with_the_right_determinant(group: Group) -> None:
    for g in group.elements():
        m = group.matrix(g)
        torch.testing.assert_close(m @ m.T, torch.eye(2, dtype=torch.float64), atol=1e-12, rtol=0)
        assert math.isclose(torch.det(m).item(), -1.0 if group.is_reflection(g) else 1.0, abs_tol=1e-12)


def test_angle_convention_is_counter_clockwise() -> None:
    c4 = cyclic(4)
    quarter = c4.element(1)
    assert c4.degrees(quarter) == 90.0 and math.isclose(c4.radians(quarter), math.pi / 2)
    # (1, 0) -> (0, 1): counter-clockwise in a y-up plane
    torch.testing.assert_close(c4.matrix(quarter) @ torch.tensor([1.0, 0.0], dtype=torch.float64),
                               torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)  # fmt: skip


def test_image_action_matches_the_matrix() -> None:
    """A bright pixel at plane point p moves to g p, for every element of D4."""
    d4 = dihedral(4)
    image = torch.zeros(7, 7)
    image[1, 5] = 1.0  # row 1, column 5: x = 5 - 3 = 2, y = 3 - 1 = 2
    point = torch.tensor([2.0, 2.0], dtype=torch.float64)
    for g in d4.elements():
        moved = d4.transform_images(image, g)
        row, col = divmod(int(moved.argmax()), 7)
        x, y = (d4.matrix(g) @ point).round().tolist()
        assert (col - 3, 3 - row) == (x, y), d4.name + f" element {g}"


@pytest.mark.parametrize("group", EXACT_GROUPS, ids=ids)
def test_image_action_is_a_group_action(group: Group) -> None:
    images = torch.randn(2, 3, 9, 9)
    for a, b in itertools.product(group.elements(), repeat=2):
        left = group.transform_images(group.transform_images(images, b), a)
        right = group.transform_images(images, group.compose(a, b))
        assert torch.equal(left, right), (a, b)


@pytest.mark.parametrize("group", EXACT_GROUPS, ids=ids)
def test_feature_map_action_is_a_group_action(group: Group) -> None:
    features = torch.randn(2, 3, group.order, 9, 9)
    for a, b in itertools.product(group.elements(), repeat=2):
        left = group.transform_feature_maps(group.transform_feature_maps(features, b), a)
        right = group.transform_feature_maps(features, group.compose(a, b))
        assert torch.equal(left, right), (a, b)


def test_feature_map_action_permutes_the_group_axis() -> None:
    c4 = cyclic(4)
    features = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(1, 1, 4, 3, 3).contiguous()
    rotated = c4.transform_feature_maps(features, c4.element(1))
    # slice h of g.F is slice g^-1 h of F: a shift by one along the group axis
    assert rotated[0, 0, :, 1, 1].tolist() == [3.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("name", ["C1", "C4", "c8", "D4", "D16", " C12 "])
def test_get_group_parses_names(name: str) -> None:
    group = get_group(name)
    assert group.name == name.strip().upper()


@pytest.mark.parametrize("name", ["", "C0", "X4", "C-1", "D", "C4.5", "C1000", "SO2"])
def test_get_group_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="group"):
        get_group(name)


def test_bad_element_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        cyclic(4).degrees(4)
    with pytest.raises(ValueError, match="no reflections"):
        cyclic(4).element(0, 1)


@pytest.mark.parametrize("name", ["C1", "C8", "D4", "D8"])
def test_groups_implement_the_planar_group_protocol(name: str) -> None:
    assert isinstance(get_group(name), PlanarGroup)


def test_a_new_kind_of_group_is_found_by_its_registered_prefix() -> None:
    register_group_kind("ZZ", cyclic)
    try:
        assert get_group("zz6") == cyclic(6)
        with pytest.raises(ValueError, match="prefix"):
            register_group_kind("C", cyclic)
    finally:
        del GROUP_KINDS["ZZ"]
    with pytest.raises(ValueError, match="unknown group"):
        get_group("ZZ6")
