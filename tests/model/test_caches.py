"""The eval-mode kernel cache: same outputs as a fresh expansion, never stale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.fusion import InferenceCache
from model.groups import cyclic
from model.layers import GroupConv2d, LiftingConv2d
from model.registry import create_model


@pytest.fixture
def layer() -> GroupConv2d:
    torch.manual_seed(0)
    return GroupConv2d(3, 4, 5, group=cyclic(8), padding=2, basis="harmonic")


def count_expansions(layer: GroupConv2d, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = layer.expand_kernel

    def counting() -> torch.Tensor:
        calls[0] += 1
        return original()

    monkeypatch.setattr(layer, "expand_kernel", counting)
    return calls


def test_cached_eval_output_equals_train_mode_computation(layer: GroupConv2d) -> None:
    x = torch.randn(2, 3, 8, 9, 9)
    layer.train()
    expected = layer(x).detach()
    layer.eval()
    with torch.no_grad():
        first, second = layer(x), layer(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)


def test_the_bank_is_expanded_once_in_eval(layer: GroupConv2d, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_expansions(layer, monkeypatch)
    layer.eval()
    with torch.inference_mode():
        for _ in range(5):
            layer(torch.randn(1, 3, 8, 7, 7))
    assert calls[0] == 1


def test_no_cache_in_training_or_with_autograd(layer: GroupConv2d, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_expansions(layer, monkeypatch)
    x = torch.randn(1, 3, 8, 7, 7)
    layer.train()
    layer(x)
    layer(x)
    layer.eval()
    layer(x)  # grad enabled and weights require grad: gradients must flow, so no cached bank
    assert calls[0] == 3


def test_cache_is_refreshed_after_an_optimizer_step(layer: GroupConv2d) -> None:
    x = torch.randn(2, 3, 8, 9, 9)
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer.train()
    F.mse_loss(layer(x), torch.zeros_like(before)).backward()
    optimizer.step()
    layer.eval()
    with torch.no_grad():
        after = layer(x)
        fresh = F.conv2d(x.flatten(1, 2), layer.expand_kernel(), layer.bias.repeat_interleave(8), padding=2)
    assert not torch.allclose(after, before)
    assert torch.equal(after.flatten(1, 2), fresh)


def test_cache_is_refreshed_after_load_state_dict(layer: GroupConv2d) -> None:
    x = torch.randn(2, 3, 8, 9, 9)
    torch.manual_seed(7)
    other = GroupConv2d(3, 4, 5, group=cyclic(8), padding=2, basis="harmonic").eval()
    layer.eval()
    with torch.no_grad():
        stale = layer(x)
        layer.load_state_dict(other.state_dict())
        loaded, reference = layer(x), other(x)
    assert not torch.allclose(loaded, stale)
    assert torch.equal(loaded, reference)


def test_cache_follows_the_module_to_another_dtype() -> None:
    layer = LiftingConv2d(1, 2, 3, group=cyclic(4)).eval()
    x = torch.randn(1, 1, 6, 6)
    with torch.no_grad():
        single = layer(x)
        double = layer.double()(x.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-5, rtol=0)


def layer_by_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The eval-mode output without the fused path or any cache: with autograd on, every bank is expanded afresh."""
    with torch.enable_grad():
        return model(x).detach()


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_whole_network_cached_inference_matches_the_layer_by_layer_computation(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    model(torch.randn(16, 1, 28, 28))  # train mode: batch-norm statistics that are not the identity
    model.eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        cached, again = model(x), model(x)  # fused, cached banks, then from the caches
    reference = layer_by_layer(model, x)
    torch.testing.assert_close(cached, reference, atol=1e-5, rtol=0)
    assert torch.equal(cached, again)


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_batch_norm_recalibration_reaches_the_fused_path(name: str) -> None:
    # running statistics updated in train mode do not bump their version counters: the mode switch clears
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        before = model(x)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(3.0 * torch.rand(64, 1, 28, 28))  # recalibration batches
    model.eval()
    with torch.inference_mode():
        after = model(x)
    assert (after - before).abs().max() > 1e-3  # a stale cache would give `before` exactly
    torch.testing.assert_close(after, layer_by_layer(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_edits_through_data_reach_the_fused_path_after_clear_caches(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        before = model(x)
    for parameter in model.convs[1].parameters():  # type: ignore[union-attr]
        parameter.data.mul_(0.0)  # as pruning code does: no version bump
    model.clear_caches()  # type: ignore[operator]
    with torch.inference_mode():
        after = model(x)
    assert (after - before).abs().max() > 1e-3  # a stale cache would give `before` exactly
    torch.testing.assert_close(after, layer_by_layer(model, x), atol=1e-5, rtol=0)


def test_clear_caches_empties_every_cache_of_a_network() -> None:
    model = create_model("gcnn_c8").eval()
    with torch.inference_mode():
        model(torch.randn(1, 1, 28, 28))
    caches = [
        value for module in model.modules() for value in vars(module).values() if isinstance(value, InferenceCache)
    ]
    assert caches and any(cache.value is not None for cache in caches)
    model.clear_caches()  # type: ignore[operator]
    assert all(cache.value is None for cache in caches)
