"""The eval-mode kernel cache: same outputs as a fresh expansion, never stale."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.checkpoint import load_checkpoint
from model.fusion import InferenceCache
from model.groups import cyclic
from model.layers import GroupConv2d, LiftingConv2d
from model.registry import create_model

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


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


def test_eval_on_a_network_already_in_eval_mode_keeps_its_cached_banks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation loops call ``model.eval()`` before every batch (bench.candidates did): that must not rebuild
    every bank (it did: the candidates' latency and FLOPs counted one expansion per call). A real switch still
    empties the caches."""
    torch.manual_seed(0)
    model = create_model("gcnn_c8").eval()
    layer = model.convs[1]
    calls = count_expansions(layer, monkeypatch)
    x = torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(3):
            model.eval()
            model(x)
    assert calls[0] == 1
    model.train()
    model.eval()
    with torch.inference_mode():
        model(x)
    assert calls[0] == 2


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
    assert layer.bias is not None
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
    # running statistics updated in train mode bump no version counter: the cache key compares their values
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
    for parameter in convolutions(model)[1].parameters():
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


# Every public way to change what a cache was built from, and whether it changes the answer. The fused
# path and the cached banks must follow each one with no clear_caches() call (review finding 1).
def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


def convolutions(model: nn.Module) -> list[nn.Module]:
    return list(model.convs)  # type: ignore[arg-type]


def recalibrate_the_batch_norms_alone(model: nn.Module) -> None:
    """The review's reproduction: only the batch norms in train mode, the model itself stays in eval."""
    for norm in batch_norms(model):
        norm.train()
    with torch.no_grad():
        for _ in range(3):
            model(3.0 * torch.rand(32, 1, 28, 28))
    for norm in batch_norms(model):
        norm.eval()


def recalibrate_with_cumulative_momentum(model: nn.Module) -> None:
    for norm in batch_norms(model):
        norm.momentum = None  # a cumulative average from now on
    recalibrate_the_batch_norms_alone(model)


def update_statistics_with_functional_batch_norm(model: nn.Module) -> None:
    for norm in batch_norms(model):
        assert norm.running_mean is not None and norm.running_var is not None
        batch = 2.0 * torch.randn(16, norm.num_features, 4) + 1.0
        F.batch_norm(batch, norm.running_mean, norm.running_var, training=True, momentum=0.5)


def edit_running_statistics_through_data(model: nn.Module) -> None:
    for norm in batch_norms(model):
        norm.running_var.data.mul_(4.0)  # type: ignore[union-attr]
        norm.running_mean.data.add_(0.5)  # type: ignore[union-attr]


def load_a_batch_norm_state_dict(model: nn.Module) -> None:
    norm = batch_norms(model)[-1]
    state = {key: 3 * value + 1 if value.is_floating_point() else value for key, value in norm.state_dict().items()}
    norm.load_state_dict(state)


def replace_convolution_weight_data(model: nn.Module) -> None:
    for conv in convolutions(model):
        weight = conv.get_parameter("weight")
        weight.data = weight.data.flip(0).contiguous()


def edit_in_double_precision_and_back(model: nn.Module) -> None:
    model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.9)
    model.float()


def put_only_the_convolutions_in_train_mode(model: nn.Module) -> None:
    for conv in convolutions(model):
        conv.train()


def fine_tune_in_eval_mode_after_freezing(model: nn.Module) -> None:
    x = torch.rand(4, 1, 28, 28)
    model.requires_grad_(False)
    with torch.enable_grad():
        model(x)  # frozen: the cached banks serve an autograd forward
    model.requires_grad_(True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x).square().mean().backward()  # eval mode: frozen batch-norm statistics
    optimizer.step()


CHANGES = [
    (recalibrate_the_batch_norms_alone, True),
    (recalibrate_with_cumulative_momentum, True),
    (update_statistics_with_functional_batch_norm, True),
    (edit_running_statistics_through_data, True),
    (load_a_batch_norm_state_dict, True),
    (replace_convolution_weight_data, True),
    (edit_in_double_precision_and_back, True),
    (put_only_the_convolutions_in_train_mode, False),
    (fine_tune_in_eval_mode_after_freezing, True),
]


def trained_looking(name: str) -> nn.Module:
    """A small model with batch-norm statistics and affine parameters that are not the identity, in eval mode."""
    torch.manual_seed(0)
    model = create_model(name, hidden_channels=4)
    with torch.no_grad():
        for norm in batch_norms(model):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
        model(torch.rand(32, 1, 28, 28))  # train mode: running statistics
    return model.eval()


def fused(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).clone()


def frozen_with_autograd(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval mode, every weight frozen, autograd on: no fusion, the cached kernel banks."""
    flags = [parameter.requires_grad for parameter in model.parameters()]
    model.requires_grad_(False)
    try:
        with torch.enable_grad():
            return model(x).detach()
    finally:
        for parameter, flag in zip(model.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


def reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``model`` computes now, layer by layer, by a copy that holds no cache."""
    clone = copy.deepcopy(model).requires_grad_(True)  # a copy starts with empty caches
    with torch.enable_grad():
        return clone(x).detach()


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
@pytest.mark.parametrize(("change", "changes_output"), CHANGES, ids=[change.__name__ for change, _ in CHANGES])
def test_no_sequence_of_pytorch_calls_leaves_a_cache_stale(
    name: str, change: Callable[[nn.Module], None], changes_output: bool
) -> None:
    model, x = trained_looking(name), torch.rand(3, 1, 28, 28)
    before = fused(model, x)
    frozen_with_autograd(model, x)  # fills the kernel caches that serve autograd
    change(model)
    expected = reference(model, x)
    assert ((expected - before).abs().max() > 1e-3) == changes_output
    torch.testing.assert_close(fused(model, x), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(frozen_with_autograd(model, x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("card", ["gcnn_c8_pose", "cnn_seed"])
def test_recalibrating_only_the_batch_norms_of_a_shipped_model_reaches_the_fused_path(card: str) -> None:
    model, _ = load_checkpoint(WEIGHTS / f"{card}.json")
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = fused(model, x)
    recalibrate_the_batch_norms_alone(model)
    expected = reference(model, x)
    assert (expected - before).abs().max() > 0.1  # the recalibration moved the logits
    torch.testing.assert_close(fused(model, x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_a_model_built_in_inference_mode_runs_fused_and_follows_its_edits(name: str) -> None:
    """Inference tensors track no version: the caches compare their values instead."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        model = create_model(name, hidden_channels=4).eval()
        first = model(x)
        for conv in convolutions(model):
            conv.get_parameter("bias").add_(0.5)  # in place, allowed on inference tensors in inference mode
        edited = model(x)
    copy_ = create_model(name, hidden_channels=4).eval()
    copy_.load_state_dict(model.state_dict())
    assert (edited - first).abs().max() > 1e-3
    torch.testing.assert_close(edited, reference(copy_, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_saliency_of_a_frozen_model_after_an_inference_mode_forward(name: str) -> None:
    """Banks cached during an ``inference_mode`` forward must serve autograd later (review finding 2)."""
    model, x = trained_looking(name).requires_grad_(False), torch.rand(2, 1, 28, 28)
    fused(model, x)  # caches banks built in inference mode
    image = x.clone().requires_grad_(True)
    model(image)[:, 3].sum().backward()
    fresh = copy.deepcopy(model)
    expected = x.clone().requires_grad_(True)
    fresh(expected)[:, 3].sum().backward()
    assert image.grad is not None and expected.grad is not None and expected.grad.abs().max() > 0
    torch.testing.assert_close(image.grad, expected.grad, atol=1e-6, rtol=1e-5)
