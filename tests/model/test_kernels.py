"""Kernel bases: every copy of a filter is the filter transformed as the group's matrices say; quarter turns
and mirrors are exact index permutations."""

from __future__ import annotations

import math

import pytest
import torch

from model.groups import Group, dihedral, get_group
from model.kernels import GridBasis, HarmonicBasis, make_basis


@pytest.mark.parametrize("basis", [HarmonicBasis(5), HarmonicBasis(7)], ids=["harmonic5", "harmonic7"])
@pytest.mark.parametrize("group", [dihedral(4), dihedral(8), get_group("C16")], ids=lambda g: g.name)
def test_exact_elements_permute_the_identity_basis(basis: HarmonicBasis, group: Group) -> None:
    """The harmonic copies are sampled from the formula; on the exact elements they must equal the upright
    copy's pixels permuted."""
    bank = basis.transformed(group)  # (|G|, K, k, k)
    for g in group.elements():
        if group.is_exact(g):
            assert torch.equal(bank[g], group.transform_images(bank[group.identity], g)), f"{group.name} element {g}"


def grid_points(size: int) -> torch.Tensor:
    """Plane coordinates ``(x, y)`` of a ``size x size`` grid's pixels, ``(size, size, 2)``: centre at the
    origin, row 0 at the top, y up (as model.groups states)."""
    half = size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    y, x = torch.meshgrid(-coords, coords, indexing="ij")
    return torch.stack((x, y), dim=-1)


def analytic_deltas(size: int, matrix: torch.Tensor) -> torch.Tensor:
    """The pixel deltas transformed by the plane map ``matrix``, from their definition alone:
    ``(g.psi_k)(x) = psi_k(g^-1 x)``, with ``psi_k`` read between pixels bilinearly, a tent of one pixel's
    half-width around its pixel ``p_k``: ``(K, k, k)``. A delta at ``g p_k`` where ``g`` maps pixels onto
    pixels, spread over the four pixels around ``g p_k`` otherwise."""
    points = grid_points(size)  # (k, k, 2)
    source = points @ torch.linalg.inv(matrix).T  # g^-1 x at every pixel x
    centres = points.reshape(-1, 1, 1, 2)  # p_k, in the basis's order (row-major)
    tent = (1 - (source[None] - centres).abs()).clamp(min=0)  # (K, k, k, 2)
    return tent[..., 0] * tent[..., 1]


@pytest.mark.parametrize("group", [dihedral(4), dihedral(8), get_group("C16")], ids=lambda g: g.name)
@pytest.mark.parametrize("size", [3, 5])
def test_every_grid_copy_is_the_delta_moved_by_the_group_matrix(group: Group, size: int) -> None:
    """Each copy of a free filter is the filter at the points the group's matrix maps (exactly a
    permutation on quarter turns and mirrors, bilinear otherwise), whatever route the basis takes to it."""
    bank = GridBasis(size).transformed(group).double()  # (|G|, K, k, k)
    for g in group.elements():
        expected = analytic_deltas(size, group.matrix(g))
        torch.testing.assert_close(bank[g], expected, atol=1e-6, rtol=0, msg=f"{group.name} element {g}")
        if group.is_exact(g):  # a permutation of the deltas: each lands on exactly one pixel
            assert torch.equal(bank[g].flatten(1).sum(dim=1), torch.ones(size * size, dtype=torch.float64))
            assert set(bank[g].unique().tolist()) == {0.0, 1.0}


def analytic_harmonics(basis: HarmonicBasis, degrees: float, mirrored: bool = False) -> torch.Tensor:
    """Each basis function of ``basis`` transformed by ``r(degrees) m^mirrored``, evaluated here from its
    formula (independently of model.kernels): ``(g.psi)(x) = psi(g^-1 x)``; ``(K, k, k)``, unit norm upright."""
    half = basis.kernel_size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    y, x = torch.meshgrid(-coords, coords, indexing="ij")  # row 0 is the top, y points up
    radius, phi = torch.hypot(x, y), torch.atan2(y, x)
    source = phi - math.radians(degrees)  # r^-1: turn the point back
    if mirrored:
        source = math.pi - source  # then m^-1 = m: (x, y) -> (-x, y)
    functions, norms = [], []
    for rho, m, is_sine in basis.functions:
        ring = torch.exp(-((radius - rho) ** 2) / (2 * basis.ring_width**2))
        wave = torch.sin if is_sine else torch.cos
        value, upright = ring * wave(m * source), ring * wave(m * phi)
        if m > 0:  # undefined at the origin: zero there
            value, upright = value.masked_fill(radius == 0, 0.0), upright.masked_fill(radius == 0, 0.0)
        functions.append(value)
        norms.append(upright.norm())
    return torch.stack(functions) / torch.stack(norms)[:, None, None]


@pytest.mark.parametrize("group", [get_group("C8"), dihedral(8), get_group("C16")], ids=lambda g: g.name)
@pytest.mark.parametrize("size", [5, 7])
def test_every_harmonic_copy_is_the_continuous_filter_at_transformed_points(group: Group, size: int) -> None:
    """The 45- and 22.5-degree copies are the filter's formula evaluated at rotated points, not a resampling."""
    basis = HarmonicBasis(size)
    bank = basis.transformed(group).double()
    for g in group.elements():
        expected = analytic_harmonics(basis, group.degrees(g), group.is_reflection(g))
        torch.testing.assert_close(bank[g], expected, atol=1e-6, rtol=0, msg=f"{group.name} element {g}")
    assert not torch.allclose(bank[1], bank[0])  # a genuinely different copy


def test_basis_functions_have_unit_norm_and_are_independent() -> None:
    basis = HarmonicBasis(5)
    functions = basis.transformed(get_group("C1"))[0].flatten(1).double()  # (K, 25)
    torch.testing.assert_close(functions.norm(dim=1), torch.ones(basis.size, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.linalg.matrix_rank(functions) == basis.size


def test_unknown_basis() -> None:
    with pytest.raises(ValueError, match="unknown kernel basis"):
        make_basis("wavelet", 5)
