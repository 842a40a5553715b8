"""Anti-aliased subsampling and smooth nonlinearities: exact for quarter turns and mirrors, like the
plain max pool (the networks built with them: tests/model/test_networks.py, every element of C4 and D4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.antialias import activation, binomial_kernel, blur_pool, low_pass_pool, max_2x2, subsample
from model.groups import get_group
from tests.model.test_networks import gcnn, warm_up_batch_norm

D4 = get_group("D4")


@pytest.mark.parametrize("pool", [blur_pool, low_pass_pool])
@pytest.mark.parametrize("g", list(D4.elements()))
def test_anti_aliased_pools_commute_with_every_element_of_d4(g: int, pool) -> None:
    x = torch.rand(2, 3, 28, 28, dtype=torch.float64)
    error = (pool(D4.transform_images(x, g)) - D4.transform_images(pool(x), g)).abs().max()
    assert error <= 1e-12  # exact up to float64 rounding: only permutations of the same sums


@pytest.mark.parametrize("pool", [blur_pool, low_pass_pool])
def test_anti_aliased_pools_halve_even_maps_and_refuse_odd_ones(pool) -> None:
    assert pool(torch.rand(1, 2, 14, 14)).shape == (1, 2, 7, 7)
    with pytest.raises(ValueError, match="even"):
        pool(torch.rand(1, 2, 7, 7))


def test_low_pass_pool_is_the_4x4_binomial_at_stride_2() -> None:
    """Away from the border, output ``i`` weighs rows and columns ``2i - 1 .. 2i + 2`` by ``[1, 3, 3, 1] / 8``."""
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    line = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1)), (line[:, None] * line[None, :])[None, None], stride=2)  # (1, 1, 4, 4)
    assert torch.allclose(low_pass_pool(x)[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-12)
    assert torch.allclose(low_pass_pool(torch.ones(1, 1, 8, 8))[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_low_pass_pool_keeps_no_spatial_maximum() -> None:
    """Linear: the pool of a sum is the sum of the pools (a max pool's is not)."""
    a, b = torch.rand(2, 1, 1, 12, 12, dtype=torch.float64)
    assert torch.allclose(low_pass_pool(a + b), low_pass_pool(a) + low_pass_pool(b), atol=1e-12)
    assert not torch.allclose(blur_pool(a + b), blur_pool(a) + blur_pool(b))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_2x2_is_max_pool_at_stride_1_to_the_last_bit_and_routes_the_same_gradient_up_to_rounding(
    layout: torch.memory_format,
) -> None:
    x = torch.randn(3, 5, 14, 14).contiguous(memory_format=layout).requires_grad_(True)  # no ties (continuous)
    y = torch.randn(3, 5, 13, 13)
    ours, reference = max_2x2(x), F.max_pool2d(x, 2, stride=1)
    assert torch.equal(ours, reference)
    (grad_ours,) = torch.autograd.grad((ours * y).sum(), x)
    (grad_reference,) = torch.autograd.grad((reference * y).sum(), x)
    assert torch.allclose(grad_ours, grad_reference, rtol=0, atol=1e-5)  # float sums in another order: measured 5e-7


def test_blur_pool_is_a_max_then_a_normalised_binomial() -> None:
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    peaks = F.max_pool2d(x, 2, stride=1)  # (1, 1, 5, 5)
    padded = F.pad(peaks, (1, 1, 1, 1))
    weights = binomial_kernel(torch.float64)[0, 0]
    expected = torch.stack(
        [
            torch.stack([(padded[0, 0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * weights).sum() for j in range(3)])
            for i in range(3)
        ]
    )
    assert weights.sum() == 1.0
    assert torch.allclose(blur_pool(x)[0, 0], expected, atol=1e-12)


def test_blur_pool_removes_the_checkerboard_that_max_pool_keeps() -> None:
    """The highest frequency of the grid: a max pool passes it through as a constant 1, the low-pass
    turns it into its mean (away from the zero-padded border)."""
    checkerboard = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float()[None, None]
    assert torch.all(subsample(checkerboard, "max") == 1.0)
    assert torch.allclose(blur_pool(checkerboard)[..., 1:-1, 1:-1], torch.full((1, 1, 6, 6), 1.0))
    assert torch.allclose(blur_pool(1.0 - checkerboard)[..., 1:-1, 1:-1], torch.full((1, 1, 6, 6), 1.0))


@pytest.mark.parametrize("name", ["relu", "elu", "softplus"])
def test_activations_are_their_torch_functions(name: str) -> None:
    x = torch.linspace(-3, 3, 13)
    assert torch.equal(activation(x, name), getattr(F, name)(x))


def test_unknown_modes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="subsample"):
        subsample(torch.rand(1, 1, 4, 4), "average")
    with pytest.raises(ValueError, match="nonlinearity"):
        activation(torch.rand(3), "tanh")
    with pytest.raises(ValueError, match="subsample"):
        gcnn("C4", subsample="average")


@pytest.mark.parametrize("mode", ["blur", "low_pass"])
def test_fused_path_with_anti_aliased_pools_matches_the_reference_path(mode: str) -> None:
    model = gcnn("C8", subsample=mode)
    warm_up_batch_norm(model)
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        fused = model(x)
        reference = model.forward_head(model.layer_outputs(model.low_pass(x))[-1])
    assert (fused - reference).abs().max() <= 1e-4


def test_blur_pool_gives_the_same_maps_with_and_without_autograd() -> None:
    x = torch.randn(2, 6, 14, 14)
    with torch.inference_mode():
        inferred = blur_pool(x)  # max_2x2
    trained = blur_pool(x.clone().requires_grad_(True))  # F.max_pool2d, for its faster backward
    assert torch.equal(inferred, trained.detach())
