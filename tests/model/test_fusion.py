"""The fused inference path (batch norm folded into cached conv banks, ReLU fused,
channels-last): same outputs as the layer-by-layer path, never stale, exact
invariance kept. No timing assertions: speed is measured by ``bench/``."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from model import fusion
from model.checkpoint import load_checkpoint
from model.fusion import FusedConvReLU, fold_batch_norm
from model.groups import get_group
from model.layers import GroupConv2d
from model.registry import create_model

SHIPPED = ["weights/cnn_seed.json", "weights/gcnn_c8_wide.json"]


def trained_looking(name: str, **overrides: object) -> nn.Module:
    """A model whose batch norms hold non-trivial statistics and affine parameters."""
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
        model.train()
        model(torch.rand(32, 1, 28, 28))  # running statistics
    return model.eval()


def unfused(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer-by-layer path: autograd on disables fusion."""
    with torch.enable_grad():
        return model(x).detach()


def fused(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).clone()


@pytest.mark.parametrize("name", ["gcnn_c8", "gcnn_c4_seed", "cnn", "cnn_seed"])
def test_fused_inference_matches_layer_by_layer(name: str) -> None:
    model = trained_looking(name)
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(fused(model, x), unfused(model, x), atol=1e-5, rtol=1e-5)


def test_fused_path_is_taken_only_for_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    model, calls = trained_looking("gcnn_c8", hidden_channels=4), [0]
    original = GroupConv2d.forward_fused

    def counting(self: GroupConv2d, *args: object) -> torch.Tensor:
        calls[0] += 1
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(GroupConv2d, "forward_fused", counting)
    x = torch.rand(2, 1, 28, 28)
    unfused(model, x)
    model.train()
    with torch.no_grad():
        model(x)
    assert calls[0] == 0
    model.eval()
    with torch.no_grad():
        model(x)
    assert calls[0] == model.config.num_hidden


@pytest.mark.parametrize("name", ["gcnn_c8", "cnn"])
def test_fold_is_rebuilt_when_batch_norm_changes(name: str) -> None:
    model, x = trained_looking(name), torch.rand(3, 1, 28, 28)
    before = fused(model, x)
    with torch.no_grad():
        model.norms[1].running_var.mul_(4.0)  # in place: bumps the version counter
        model.norms[2].bias.add_(0.5)
    after = fused(model, x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, unfused(model, x), atol=1e-5, rtol=1e-5)


def test_fold_is_rebuilt_after_load_state_dict_and_an_optimizer_step() -> None:
    model, x = trained_looking("gcnn_c8", hidden_channels=4), torch.rand(3, 1, 28, 28)
    fused(model, x)
    other = trained_looking("gcnn_c8", hidden_channels=4)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.1)
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(fused(model, x), unfused(other, x), atol=1e-5, rtol=1e-5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(x).sum().backward()
    optimizer.step()
    model.eval()
    torch.testing.assert_close(fused(model, x), unfused(model, x), atol=1e-5, rtol=1e-5)


def test_kernel_cache_off_rebuilds_the_fold_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = trained_looking("gcnn_c8", hidden_channels=4), torch.rand(2, 1, 28, 28)
    cached = fused(model, x)
    expansions = [0]
    original = GroupConv2d.expand_kernel

    def counting(self: GroupConv2d) -> torch.Tensor:
        expansions[0] += 1
        return original(self)

    monkeypatch.setattr(GroupConv2d, "expand_kernel", counting)
    fused(model, x)
    assert expansions[0] == 0  # steady state: nothing re-expanded
    for conv in model.convs:
        conv.cache_kernels = False
    torch.testing.assert_close(fused(model, x), cached, atol=0, rtol=0)
    fused(model, x)
    assert expansions[0] == 2 * model.config.num_hidden


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_fused_inference_keeps_exact_invariance(name: str) -> None:
    model, group = trained_looking("gcnn_c8", group=name, hidden_channels=4), get_group(name)
    x = torch.rand(4, 1, 28, 28)
    reference = fused(model, x)
    for g in group.elements():
        assert (fused(model, group.transform_images(x, g)) - reference).abs().max() <= 1e-4


def test_models_with_fused_caches_copy_and_pickle() -> None:
    model, x = trained_looking("gcnn_c8", hidden_channels=4), torch.rand(2, 1, 28, 28)
    expected = fused(model, x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        torch.testing.assert_close(fused(clone, x), expected, atol=0, rtol=0)


def test_double_precision_falls_back_to_conv2d() -> None:
    model, x = trained_looking("gcnn_c8", hidden_channels=4), torch.rand(2, 1, 28, 28)
    expected = fused(model, x)
    model.double()
    torch.testing.assert_close(fused(model, x.double()).float(), expected, atol=1e-5, rtol=1e-5)


def test_fused_conv_relu_matches_conv2d_and_bounds_its_packed_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fusion, "_MAX_PACKED_SHAPES", 2)
    torch.manual_seed(0)
    weight, bias = torch.randn(6, 3, 3, 3), torch.randn(6)
    conv = FusedConvReLU(weight, bias, stride=1, padding=1)
    with torch.inference_mode():
        for batch in (1, 2, 3, 1):
            x = torch.randn(batch, 3, 9, 9)
            expected = torch.relu(torch.nn.functional.conv2d(x, weight, bias, padding=1))
            torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)
    assert len(conv._packed) <= 2


def test_fold_batch_norm_is_the_affine_map_of_eval_batch_norm() -> None:
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2), norm.weight.uniform_(0.5, 2)
        weight, bias = fold_batch_norm(conv.weight, conv.bias, norm)
        x = torch.randn(2, 3, 8, 8)
        torch.testing.assert_close(nn.functional.conv2d(x, weight, bias), norm(conv(x)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="running statistics"):
        fold_batch_norm(conv.weight, conv.bias, nn.BatchNorm2d(4, track_running_stats=False))


@pytest.mark.parametrize("card", SHIPPED)
def test_shipped_models_predict_the_same_on_either_path(card: str) -> None:
    model, _ = load_checkpoint(card)
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 28, 28, generator=generator) > 0.8).float()  # sparse stroke-like pixels
    fast, slow = fused(model, x), unfused(model, x)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-5)
    assert torch.equal(fast.argmax(dim=1), slow.argmax(dim=1))
