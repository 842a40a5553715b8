"""The equivariance probe (model.equivariance): clean turns of the input, and errors that separate an
equivariant network from a plain CNN."""

from __future__ import annotations

import pytest
import torch

from model.equivariance import descriptors, equivariance_errors, turned_cleanly
from model.registry import create_model


def blobs() -> torch.Tensor:
    """Smooth digit-like images: a few Gaussian strokes, so the 4x bicubic round trip is nearly lossless."""
    torch.manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = torch.rand(6, 3, 2) * 12 + 8
    strokes = [
        torch.exp(-((ys - centres[:, k, 0, None, None]) ** 2 + (xs - centres[:, k, 1, None, None]) ** 2) / 8)
        for k in range(3)
    ]
    return torch.stack(strokes).sum(dim=0)[:, None].float()  # (6, 1, 28, 28)


def test_clean_turn_by_a_quarter_is_rot90_of_the_clean_upright_image() -> None:
    x = blobs()
    assert torch.allclose(turned_cleanly(x, 90.0), torch.rot90(turned_cleanly(x, 0.0), 1, dims=(-2, -1)), atol=1e-6)


def test_clean_turn_keeps_the_ink_of_a_centred_digit() -> None:
    x = blobs()
    upright, turned = turned_cleanly(x, 0.0), turned_cleanly(x, 45.0)
    assert torch.allclose(turned.sum(dim=(-2, -1)), upright.sum(dim=(-2, -1)), rtol=2e-3)


def test_descriptors_have_one_entry_per_layer_and_the_logits() -> None:
    torch.manual_seed(0)
    model = create_model("gcnn_c8_wide").eval()
    with torch.no_grad():
        found = descriptors(model, blobs())
    assert [tuple(d.shape) for d in found] == [(6, 12)] * 5 + [(6, 10)]


@pytest.mark.parametrize("name", ["gcnn_c8_wide", "gcnn_c8_aa"])
def test_g_cnn_is_exact_at_quarter_turns_and_the_plain_cnn_is_not(name: str) -> None:
    torch.manual_seed(0)
    gcnn, cnn = create_model(name), create_model("cnn")
    g_errors = equivariance_errors(gcnn, blobs(), (90.0, 45.0))
    cnn_errors = equivariance_errors(cnn, blobs(), (90.0,))
    assert max(g_errors[90.0]) <= 1e-5
    assert max(cnn_errors[90.0]) > 1e3 * max(g_errors[90.0])  # the negative control
    assert max(g_errors[45.0]) > 1e-4  # between the grid's quarter turns the probe sees the error
