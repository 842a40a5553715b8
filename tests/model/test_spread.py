"""model.spread: every seed's value, mean and sample sd, the shipped seed-0 card included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.spread import main, spread


def card(path: Path, seed: int, upright: float, rotated: float, orientation: dict | None = None) -> None:
    metrics: dict = {"upright_accuracy": upright, "rotated_accuracy": rotated}
    if orientation is not None:  # a joint-head card (model.train and model.evaluate write it)
        metrics["orientation"] = orientation
    path.write_text(json.dumps({"training": {"seed": seed}, "metrics": metrics}))


def orientation(median: float, flagged: int, mistakes: int) -> dict:
    return {
        "upright_accuracy_prior_upright": 0.99,
        "rotated_orientation_median_error": median,
        "rotated_orientation_within_22_5": 0.9,
        "six_nine_mistakes_flagged": flagged,
        "six_nine_mistakes": mistakes,
    }


def test_spread_reads_the_shipped_card_and_every_seed_run(tmp_path: Path) -> None:
    weights, runs = tmp_path / "weights", tmp_path / "runs"
    weights.mkdir(), runs.mkdir()
    card(weights / "m.json", 0, 0.99, 0.96)
    card(runs / "m_seed1.json", 1, 0.98, 0.97)
    card(runs / "m_seed2.json", 2, 0.97, 0.98)
    card(runs / "other_seed1.json", 1, 0.5, 0.5)
    summary = spread(runs, "m", weights)
    assert summary["seeds"] == [0, 1, 2]
    values, mean, sd = summary["rotated_accuracy"]
    assert values == pytest.approx([96.0, 97.0, 98.0]) and mean == pytest.approx(97.0) and sd == pytest.approx(1.0)


def test_spread_adds_the_orientation_measures_of_a_joint_head(tmp_path: Path) -> None:
    card(tmp_path / "m.json", 0, 0.99, 0.97, orientation(9.0, 7, 8))
    card(tmp_path / "m_seed1.json", 1, 0.99, 0.98, orientation(11.0, 6, 7))
    summary = spread(tmp_path, "m", tmp_path)
    assert summary["rotated_orientation_median_error"][1] == pytest.approx(10.0)
    assert summary["six_nine_flagged"] == [(7, 8), (6, 7)]


def test_spread_command_reads_the_seed_0_card_from_the_folder_weights_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    final, runs = tmp_path / "final", tmp_path / "runs"
    final.mkdir(), runs.mkdir()
    card(final / "m_mixed.json", 0, 0.99, 0.96)
    card(runs / "m_mixed_seed1.json", 1, 0.98, 0.98)
    main([str(runs), "m_mixed", "--weights", str(final)])
    printed = capsys.readouterr().out
    assert "m_mixed: seeds [0, 1]" in printed
    assert "96.00 98.00" in printed and "mean 97.00 sd 1.41" in printed
