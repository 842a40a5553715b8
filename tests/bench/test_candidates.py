"""bench.candidates: the comparison table on held-out digits (choosing) and on the test set (final), needs MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.candidates import compare, six_nine_swaps
from model.train import main as train_main

pytestmark = pytest.mark.data


def tiny_card(out: Path, *extra: str) -> Path:
    card = train_main([
        "--model", "gcnn_c8", "--set", "hidden_channels=2", "--max-steps", "2", "--batch-size", "32",
        "--limit", "64", "--device", "cpu", "--skip-test", "--out-dir", str(out), *extra,
    ])  # fmt: skip
    assert card is not None
    return card


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("candidates")
    return {
        "held_out": tiny_card(out, "--val-split", "100", "--name", "held_out"),
        "held_out_blur": tiny_card(out, "--val-split", "100", "--name", "held_out_blur", "--set", "subsample=blur"),
        "every_digit": tiny_card(out, "--name", "every_digit"),
    }


def test_compare_gives_each_card_a_row_and_the_baselines_orbit_average_twice_its_flops(
    cards: dict[str, Path],
) -> None:
    rows = compare([cards["held_out"], cards["held_out_blur"]], cards["held_out"], 100, None, limit=40)
    assert [row.name for row in rows] == ["held_out", "held_out_blur", "held_out + orbit average (0°, 22.5°)"]
    for row in rows:
        assert 0.0 <= row.upright <= 1.0 and 0.0 <= row.rotated <= 1.0 and 0.0 <= row.worst_bin <= row.rotated + 1e-9
        assert row.worst_bin_start in range(0, 90, 15)
        assert 0 <= row.swaps_upright <= 40 and 0 <= row.swaps_rotated <= 40
        assert row.error_45 >= 0.0 and row.latency_ratio > 0.0
    assert rows[0].latency_ratio == 1.0
    assert rows[2].parameters == rows[0].parameters
    assert 1.9 <= rows[2].flops / rows[0].flops <= 2.2  # two forward passes (and a bilinear turn)


def test_held_out_scoring_refuses_a_card_that_trained_on_the_held_out_digits(cards: dict[str, Path]) -> None:
    with pytest.raises(SystemExit, match="not 100"):
        compare([cards["held_out"], cards["every_digit"]], cards["held_out"], 100, None, limit=40)


def test_test_set_scoring_takes_only_cards_trained_on_every_training_digit(cards: dict[str, Path]) -> None:
    rows = compare([cards["every_digit"]], cards["every_digit"], 10000, None, limit=40, test=True)
    assert [row.name for row in rows] == ["every_digit", "every_digit + orbit average (0°, 22.5°)"]
    with pytest.raises(SystemExit, match="none \\(--test\\)"):
        compare([cards["held_out"]], cards["held_out"], 10000, None, limit=40, test=True)


def test_six_nine_swaps_count_only_a_6_read_as_9_and_a_9_read_as_6() -> None:
    labels = torch.tensor([6, 9, 6, 9, 6, 8, 0])
    predicted = torch.tensor([9, 6, 6, 9, 8, 9, 6])  # two swaps; a right answer, a 6 read as 8, an 8 read as 9
    assert six_nine_swaps(predicted, labels) == 2
