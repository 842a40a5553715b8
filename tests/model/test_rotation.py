"""The project's one rotation function: exact quarter turns, bilinear otherwise."""

from __future__ import annotations

import math

import pytest
import torch

from model.rotation import rotate, rotate_bilinear
from tests.helpers import centre, smooth_images


@pytest.mark.parametrize("quarters", [0, 1, 2, 3, 4, -1])
def test_quarter_turns_are_exact_permutations(quarters: int) -> None:
    images = torch.randn(2, 1, 6, 6)
    assert torch.equal(rotate(images, 90.0 * quarters), torch.rot90(images, quarters, dims=(-2, -1)))


def test_quarter_turn_of_a_non_square_image_transposes_its_size() -> None:
    assert rotate(torch.randn(1, 5, 8), 90.0).shape == (1, 8, 5)
    assert rotate(torch.randn(1, 5, 8), 45.0).shape == (1, 5, 8)


@pytest.mark.parametrize("degrees", [90.0, 180.0, 270.0])
def test_bilinear_agrees_with_the_exact_path_on_quarter_turns(degrees: float) -> None:
    images = torch.randn(3, 2, 9, 9)
    torch.testing.assert_close(rotate_bilinear(images, degrees), rotate(images, degrees), atol=1e-5, rtol=0)


def test_counter_clockwise() -> None:
    image = torch.zeros(1, 5, 5)
    image[0, 2, 4] = 1.0  # right of centre
    assert rotate(image, 90.0)[0, 0, 2] == 1.0  # now above centre


def test_bilinear_rotations_compose_on_smooth_images() -> None:
    """30 + 15 degrees = 45 degrees, up to bilinear smoothing (documented: 10% of the peak),
    and clearly closer to 45 than to 40 or 50 degrees."""
    images = smooth_images(2, 1, 41, sigma=2.5)
    twice = rotate(rotate(images, 30.0), 15.0)
    error = centre(twice - rotate(images, 45.0), 8).abs().max()
    assert error <= 0.10 * images.abs().max()
    for wrong in (40.0, 50.0):
        assert centre(twice - rotate(images, wrong), 8).abs().max() > 2 * error


def test_per_image_angles() -> None:
    images = torch.randn(3, 1, 7, 7)
    angles = torch.tensor([0.0, 90.0, 180.0], dtype=torch.float64)
    rotated = rotate_bilinear(images, angles)
    for image, out, angle in zip(images, rotated, angles.tolist(), strict=False):
        torch.testing.assert_close(out, rotate(image, angle), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_angles_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        rotate(torch.zeros(1, 4, 4), bad)


def test_integer_images_are_rejected() -> None:
    with pytest.raises(TypeError, match="floating"):
        rotate_bilinear(torch.zeros(1, 4, 4, dtype=torch.uint8), 10.0)


def test_turning_about_another_centre_brings_that_point_to_the_image_centre() -> None:
    images = torch.rand(2, 1, 9, 9)
    centre = torch.tensor([[5.0, 4.0], [4.0, 2.0]])  # (row, column): one pixel down; two pixels left
    moved = rotate_bilinear(images, torch.zeros(2), centre)  # no turn: a whole-pixel shift, nothing interpolated
    torch.testing.assert_close(moved[0, :, :-1], images[0, :, 1:])
    torch.testing.assert_close(moved[1, :, :, 2:], images[1, :, :, :-2])
    about_centre = torch.full((2, 2), 4.0)  # the image centre: the default turn
    turned = rotate_bilinear(images, 30.0 * torch.ones(2), about_centre)
    torch.testing.assert_close(turned, rotate_bilinear(images, 30.0))
