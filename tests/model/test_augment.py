"""model.augment: whole-pixel shifts, each image its own, nothing interpolated."""

from __future__ import annotations

import pytest
import torch

from model.augment import random_shift
from tests.helpers import moved


def test_zero_shift_returns_the_images_unchanged() -> None:
    images = torch.rand(4, 1, 28, 28)
    assert random_shift(images, 0) is images


def test_every_image_is_itself_moved_by_whole_pixels_within_the_bound() -> None:
    images = torch.rand(64, 2, 12, 10)
    out = random_shift(images, 2, generator=torch.Generator().manual_seed(0))
    seen = set()
    for image, found in zip(images, out, strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(found, moved(image, dy, dx))]
        assert len(matches) == 1  # exactly one whole-pixel shift, bit for bit: nothing interpolated
        seen.add(matches[0])
    assert len(seen) > 10  # each image draws its own shift


def test_a_digit_clear_of_the_border_keeps_all_its_ink() -> None:
    images = torch.zeros(32, 1, 28, 28)
    images[:, :, 6:22, 8:20] = torch.rand(32, 1, 16, 12)
    out = random_shift(images, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))


def test_the_same_generator_seed_gives_the_same_shifts() -> None:
    images = torch.rand(8, 1, 28, 28)
    first = random_shift(images, 2, generator=torch.Generator().manual_seed(5))
    again = random_shift(images, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(torch.zeros(1, 1, 4, 4), -1)
