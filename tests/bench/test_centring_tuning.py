"""bench.centring: the tuning table of the centred reading, counted as bench.acceptance counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.acceptance import summarise
from bench.acceptance_set import available_fonts, generate
from bench.centring import Reading, answers, choose, main, model_inputs, record
from model.centring import chosen_lean
from tests.helpers import pose_on_cells
from tests.service_process import ROOT


def test_answers_give_the_answered_digit_its_readings_and_flag_and_an_upright_prior_row_for_upright_digits() -> None:
    rows = [
        {"file": "a.png", "digit": "6", "condition": "clean", "turned": "0"},  # a typeset 6: also a turned 9
        {"file": "b.png", "digit": "6", "condition": "clean", "turned": "1"},  # turned by half a turn
    ]
    pose = pose_on_cells([{(6, 0): 0.6, (9, 180): 0.4}, {(9, 0): 0.55, (6, 180): 0.45}])
    found = answers(rows, pose, "m")
    assert [(a.file, a.prior) for a in found] == [("a.png", "none"), ("b.png", "none"), ("a.png", "upright")]
    upright, turned, upright_with_prior = found
    assert upright.answer == 6 and upright.ambiguous and upright.readings[:2] == [6, 9]
    assert turned.answer == 9 and turned.ambiguous and 6 in turned.readings and turned.right  # a flagged swap
    assert upright_with_prior.answer == 6
    summary = summarise(found)
    assert summary["half_turn_mistakes"]["m"] == {"mistakes": 1, "flagged": 1}


def test_the_tuning_table_has_a_row_per_reading_on_a_small_set(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not available_fonts():
        pytest.skip("no font of bench.acceptance_set.FONTS is installed (scripts/install_system_deps.sh)")
    folder = tmp_path / "tune"
    generate(folder, per_cell=1, seed=1)
    rows, images = model_inputs(folder)
    assert images.shape == (len(rows), 1, 28, 28) == (280, 1, 28, 28)
    main([str(ROOT / "weights" / "gcnn_c8_pose.json"), "--set", str(folder), "--leans", "0", "1"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `gcnn_c8_pose`")]
    assert [line.split(" | ")[1] for line in table] == ["plain", "centred, lean 0", "centred, lean 1"]


def _reading(upright: float, turned: float, swaps: int, flagged: int) -> Reading:
    return Reading(upright, turned, upright, swaps, flagged, flagged, flagged)


def test_the_rule_takes_the_best_upright_plus_turned_among_the_leans_that_flag_nine_swaps_in_ten() -> None:
    readings = {
        0.0: _reading(0.90, 0.97, 100, 99),
        0.5: _reading(0.98, 0.95, 100, 95),
        1.0: _reading(0.985, 0.94, 100, 90),
        1.5: _reading(0.99, 0.96, 100, 89),  # the best sum, but flags too few
    }
    assert choose(readings) == 0.5
    assert choose({0.5: readings[0.5], 0.75: _reading(0.97, 0.96, 100, 95)}) == 0.5  # a tie: the smaller lean
    # equal in exact arithmetic, not in floating point (500/560 + 401/560 against 498/560 + 403/560): still a tie
    assert choose({0.75: _reading(500 / 560, 401 / 560, 10, 9), 0.5: _reading(498 / 560, 403 / 560, 10, 9)}) == 0.5
    with pytest.raises(ValueError, match="no lean flags 90%"):
        choose({1.5: readings[1.5]})


def test_choose_writes_the_lean_and_what_it_was_chosen_from_into_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if not available_fonts():
        pytest.skip("no font of bench.acceptance_set.FONTS is installed (scripts/install_system_deps.sh)")
    folder = tmp_path / "tune"
    generate(folder, per_cell=1, seed=1)
    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "weights" / f"gcnn_c8_pose{suffix}", tmp_path / f"gcnn_c8_pose{suffix}")
    card_path = tmp_path / "gcnn_c8_pose.json"
    main([str(card_path), "--set", str(folder), "--leans", "0.5", "1", "--choose"])
    section = json.loads(card_path.read_text())["centred_reading"]
    assert set(section["readings"]) == {"0.5", "1"} and section["tuning_set"] == str(folder)
    recorded = {float(lean): Reading(**reading) for lean, reading in section["readings"].items()}
    assert section["lean"] == choose(recorded) and "--leans 0.5 1 --choose" in section["chosen_by"]
    assert chosen_lean(json.loads(card_path.read_text())) == section["lean"]
    assert not list(tmp_path.glob("*.tmp"))  # written beside the card, then renamed over it
    assert f"lean {section['lean']:g} chosen and written to the card" in capsys.readouterr().out


def test_a_card_no_lean_of_which_flags_enough_swaps_is_left_as_it_was(tmp_path: Path) -> None:
    card_path = tmp_path / "m.json"
    card_path.write_text('{"name": "m"}\n')
    with pytest.raises(SystemExit, match=r"m\.json: no lean flags 90%"):
        record(card_path, {1.5: _reading(0.99, 0.96, 100, 89)}, tmp_path / "tune")
    assert card_path.read_text() == '{"name": "m"}\n'
