"""Whole networks: G-CNN logits invariant under its group, the plain CNN as a negative control."""

from __future__ import annotations

import pytest
import torch

from model.groups import get_group
from model.networks import GCNNConfig, GroupEquivariantCNN, blurred, gaussian_kernel
from model.registry import build_model, create_model, model_names

INVARIANCE_TOLERANCE = 1e-4


def gcnn(group: str, **overrides) -> GroupEquivariantCNN:
    torch.manual_seed(0)
    return create_model("gcnn_c8", group=group, hidden_channels=4, **overrides)  # type: ignore[return-value]


def element_cases(names: list[str]) -> list:
    return [pytest.param(name, g, id=f"{name}-element{g}") for name in names for g in get_group(name).elements()]


def warm_up_batch_norm(model: torch.nn.Module) -> None:
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 28, 28))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(("name", "g"), element_cases(["C4", "D4"]))
@pytest.mark.parametrize(
    "options",
    [
        {},
        dict(subsample="blur", nonlinearity="softplus"),
        dict(pool_after=(0,), subsample="blur", nonlinearity="elu"),
        dict(subsample="low_pass"),
    ],
    ids=["max-pool-relu", "blur-softplus", "one-blur-pool-elu", "low-pass-relu"],  # the options of model.antialias
)
def test_gcnn_logits_are_invariant(name: str, g: int, mode: str, options: dict) -> None:
    model, group = gcnn(name, **options), get_group(name)
    warm_up_batch_norm(model)
    model.train(mode == "train")
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        # batch statistics in train mode are themselves invariant, so the whole batch is transformed at once
        error = (model(group.transform_images(x, g)) - model(x)).abs().max()
    assert error <= INVARIANCE_TOLERANCE


@pytest.mark.parametrize(("name", "g"), element_cases(["C4"]))
def test_seed_design_is_invariant_too(name: str, g: int) -> None:
    torch.manual_seed(0)
    model, group = create_model("gcnn_c4_seed").eval(), get_group(name)
    x = torch.rand(1, 1, 28, 28)  # batch size 1
    with torch.no_grad():
        assert (model(group.transform_images(x, g)) - model(x)).abs().max() <= INVARIANCE_TOLERANCE


@pytest.mark.parametrize(("name", "g"), element_cases(["C4"]))
def test_non_square_input(name: str, g: int) -> None:
    model, group = gcnn(name).eval(), get_group(name)
    x = torch.rand(2, 1, 28, 36)
    with torch.no_grad():
        rotated = model(group.transform_images(x, g))  # quarter turns transpose the input to 36 x 28
        assert (rotated - model(x)).abs().max() <= INVARIANCE_TOLERANCE


def test_gradients_flow_to_every_parameter() -> None:
    model = gcnn("C8")
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def l_shaped_strokes(batch: int = 4) -> torch.Tensor:
    x = torch.zeros(batch, 1, 28, 28)
    x[:, :, 5:20, 8:11] = 1.0
    x[:, :, 17:20, 8:20] = 1.0
    return x + 0.1 * torch.rand_like(x)


@pytest.mark.parametrize("g", [1, 2, 3])
def test_baseline_cnn_is_not_invariant(g: int) -> None:
    """Negative control: the same check fails for the plain CNN (its error is >100x the G-CNN's)."""
    torch.manual_seed(0)
    cnn, group = create_model("cnn_seed").eval(), get_group("C4")
    g_cnn = create_model("gcnn_c4_seed").eval()
    x = l_shaped_strokes()
    with torch.no_grad():
        cnn_error = (cnn(group.transform_images(x, g)) - cnn(x)).abs().max()
        g_cnn_error = (g_cnn(group.transform_images(x, g)) - g_cnn(x)).abs().max()
    assert cnn_error > 1e-3 and cnn_error > 100 * g_cnn_error


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_builds_and_round_trips_its_config(name: str) -> None:
    model = create_model(name)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    architecture = type(model).__name__
    rebuilt = build_model(architecture, model.config.to_dict())
    assert rebuilt.config == model.config


def test_seed_configuration_is_the_published_design() -> None:
    model = create_model("gcnn_c4_seed")
    assert model.config == GCNNConfig(
        group="C4", kernel_size=5, in_channels=1, out_channels=10, num_hidden=4, hidden_channels=16
    )
    assert create_model("cnn_seed").config.hidden_channels == 32


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet50")
    with pytest.raises(ValueError, match="unknown GCNNConfig fields"):
        create_model("gcnn_c8", width=3)


def test_a_gaussian_blur_keeps_a_centred_digits_ink_and_commutes_with_quarter_turns() -> None:
    """What input_blur and model.equivariance --input-sigma apply: isotropic, each channel alone, same size."""
    digit = torch.zeros(1, 2, 28, 28)
    digit[:, 0, 8:20, 12:15] = 1.0
    digit[:, 1, 8:11, 12:19] = 1.0
    assert torch.equal(blurred(digit, gaussian_kernel(0.0)), digit)
    soft = blurred(digit, gaussian_kernel(1.5))
    assert soft.shape == digit.shape and soft.max() < 1.0
    torch.testing.assert_close(soft.sum(dim=(2, 3)), digit.sum(dim=(2, 3)))  # no ink crosses channels or is lost
    turned = torch.rot90(digit, 1, (2, 3))
    torch.testing.assert_close(blurred(turned, gaussian_kernel(1.5)), torch.rot90(soft, 1, (2, 3)))
