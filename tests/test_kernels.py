"""Kernel bases: quarter turns and mirrors of a filter are exact index permutations."""

from __future__ import annotations

import pytest
import torch

from model.groups import Group, dihedral, get_group
from model.kernels import GridBasis, HarmonicBasis, make_basis


@pytest.mark.parametrize(
    "basis", [GridBasis(5), HarmonicBasis(5), HarmonicBasis(7)], ids=["grid5", "harmonic5", "harmonic7"]
)
@pytest.mark.parametrize("group", [dihedral(4), dihedral(8), get_group("C16")], ids=lambda g: g.name)
def test_exact_elements_permute_the_identity_basis(basis: GridBasis | HarmonicBasis, group: Group) -> None:
    bank = basis.transformed(group)  # (|G|, K, k, k)
    for g in group.elements():
        if group.is_exact(g):
            assert torch.equal(bank[g], group.transform_images(bank[group.identity], g)), f"{group.name} element {g}"


def test_harmonic_45_degree_copy_is_a_rotation_of_the_continuous_filter() -> None:
    """Rotating by 45 degrees twice through the basis lands exactly on the 90-degree copy."""
    group = get_group("C8")
    bank = HarmonicBasis(5).transformed(group)
    # the 45-degree copy is sampled analytically; its own 45-degree copy is the 90-degree one
    assert not torch.allclose(bank[1], bank[0])
    assert torch.equal(bank[2], torch.rot90(bank[0], 1, dims=(-2, -1)))
    assert torch.equal(bank[3], torch.rot90(bank[1], 1, dims=(-2, -1)))


def test_basis_functions_have_unit_norm_and_are_independent() -> None:
    basis = HarmonicBasis(5)
    functions = basis.transformed(get_group("C1"))[0].flatten(1).double()  # (K, 25)
    torch.testing.assert_close(functions.norm(dim=1), torch.ones(basis.size, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.linalg.matrix_rank(functions) == basis.size


def test_unknown_basis() -> None:
    with pytest.raises(ValueError, match="unknown kernel basis"):
        make_basis("wavelet", 5)
