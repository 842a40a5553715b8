"""Test-time orbit averaging: log of the mean probability over the turned copies."""

from __future__ import annotations

import torch

from model.orbit_average import OrbitAverage
from model.registry import create_model
from model.rotation import rotate


def test_orbit_average_is_the_log_of_the_mean_probability_over_turned_copies() -> None:
    torch.manual_seed(0)
    model = create_model("cnn").eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        averaged = OrbitAverage(model, (0.0, 22.5))(x)
        expected = (model(x).softmax(1) + model(rotate(x, 22.5)).softmax(1)).div(2).log()
    assert torch.allclose(averaged, expected, atol=1e-5)
    assert torch.allclose(averaged.exp().sum(1), torch.ones(3), atol=1e-5)


def test_one_copy_is_the_model_itself() -> None:
    torch.manual_seed(0)
    model = create_model("cnn").eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(OrbitAverage(model, (0.0,))(x), model(x).log_softmax(1), atol=1e-6)
