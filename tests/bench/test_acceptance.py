"""A small fixed sample of the realistic acceptance set, through the real service, held to thresholds.

One image per (condition, digit, upright/turned): 280 images, seed 0, sent over
HTTP to the service started as ``make serve`` does. Measured on this sample
(``python -m bench.acceptance --set`` a folder of ``generate(folder, per_cell=1,
seed=0)``): the served G-CNN (``gcnn_c8_canon_pose``) reads 96.4% of the upright
digits and 95.0% of the turned ones, and flags 14 of the 15 turned 6s and 9s it
reads as each other (``gcnn_c8_pose``, served before it: 94.3%, 91.4%, 12 of 15).
The thresholds leave about 5 points for other Pillow and torch builds, and one of
the 15 swaps; a picture that shows a digit is never refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.acceptance import Answer, evaluate, summarise
from bench.acceptance_set import available_fonts, generate
from tests.served_models import GCNN as SERVED_GCNN
from tests.service_process import ROOT, running_service

pytestmark = pytest.mark.timeout(600)

MIN_UPRIGHT = 0.91
MIN_TURNED = 0.90
MIN_SWAPS_FLAGGED = 0.85


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not available_fonts():
        pytest.skip("no font of bench.acceptance_set.FONTS is installed (scripts/install_system_deps.sh)")
    folder = tmp_path_factory.mktemp("acceptance")
    generate(folder, per_cell=1, seed=0)
    return folder


@pytest.fixture(scope="module")
def summary(sample: Path) -> Iterator[dict]:
    with running_service(ROOT / "artifacts" / "acceptance_sample_service.log") as (base, _):
        yield summarise(evaluate(base, sample))


def test_sample_covers_every_condition_digit_and_orientation(sample: Path) -> None:
    rows = (sample / "labels.csv").read_text().splitlines()[1:]
    assert len(rows) == 14 * 10 * 2
    assert {row.split(",")[2] for row in rows}.__len__() == 14


def test_no_picture_of_a_digit_is_refused_and_nothing_fails(summary: dict) -> None:
    assert summary["errors"] == 0
    for key, table in summary["table"].items():
        assert table["all"]["refused"] == 0, key


def test_the_gcnn_reads_real_uploads(summary: dict) -> None:
    upright = summary["table"][f"{SERVED_GCNN} | prior none | upright"]["all"]["accuracy"]
    turned = summary["table"][f"{SERVED_GCNN} | prior none | turned"]["all"]["accuracy"]
    assert upright >= MIN_UPRIGHT and turned >= MIN_TURNED, (upright, turned)


def test_the_gcnn_flags_turned_sixes_and_nines_it_reads_as_each_other(summary: dict) -> None:
    swaps = summary["half_turn_mistakes"][SERVED_GCNN]
    assert swaps["mistakes"] > 0 and swaps["flagged"] >= MIN_SWAPS_FLAGGED * swaps["mistakes"], swaps


def test_summary_counts_turned_six_nine_swaps_and_how_many_were_flagged() -> None:
    def answer(digit: int, said: int, *, turned: bool = True, ambiguous: bool = False, prior: str = "none") -> Answer:
        readings = [said, digit] if ambiguous else [said]
        return Answer("x.png", digit, "clean", turned, prior, "m", 200, said, ambiguous, readings)

    answers = [
        answer(6, 9, ambiguous=True),  # a swap, flagged with the 6 among the readings: right
        answer(9, 6),  # a swap, not flagged
        answer(6, 9, turned=False),  # upright: not a half-turn mistake
        answer(9, 6, prior="upright"),  # only prior none counts
        answer(6, 5),  # wrong, but not the partner
        answer(9, 9),
    ]
    summary = summarise(answers)
    assert summary["half_turn_mistakes"] == {"m": {"mistakes": 2, "flagged": 1}}
    assert summary["table"]["m | prior none | turned"]["all"]["accuracy"] == 2 / 4
