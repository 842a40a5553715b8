"""A small fixed sample of the realistic acceptance set, through the real service, held to thresholds.

One image per (condition, digit, upright/turned): 280 images, seed 0, sent over
HTTP to the service started as ``make serve`` does. Measured on this sample
(``python -m bench.acceptance --set`` a folder of ``generate(folder, per_cell=1,
seed=0)``): the served G-CNN (``gcnn_c8_canon_pose_wide_gated_max_x5``) reads 95.7% of the upright
digits and 94.3% of the turned ones, and flags 15 of the 15 turned 6s and 9s it
reads as each other (``gcnn_c8_canon_pose_gated_max_x5``, served before it: 96.4%, 95.0%, 17 of 18;
``gcnn_c8_canon_pose_gated_max``: 96.4%, 95.0%, 18 of 19;
``gcnn_c8_canon_pose_gated``: 96.4%, 95.0%, 15 of 16;
``gcnn_c8_canon_pose``: 96.4%, 95.0%, 14 of 15; ``gcnn_c8_pose``: 94.3%, 91.4%, 12 of 15).
The thresholds leave 4-5 points for other Pillow and torch builds, and two of
the 15 swaps; a picture that shows a digit is never refused. The shipped mixed pair
(trained on MNIST plus synthetic font digits) is read the same way, served by
``GCNN_MODELS`` as its users would serve it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.acceptance import Answer, evaluate, faces_markdown, misses_line, seed_spread, summarise
from bench.acceptance_set import available_fonts, generate
from tests.served_models import GCNN as SERVED_GCNN
from tests.service_process import ROOT, running_service

pytestmark = pytest.mark.timeout(600)

MIN_UPRIGHT = 0.91
MIN_TURNED = 0.90
MIN_SWAPS_FLAGGED = 0.85
# The pair trained on MNIST plus the synthetic font digits, shipped beside the served pair (weights/, not served by
# default: it misses issue 18's MNIST guard), served as its users would serve it; its G-CNN is the served network
# (14 channels) with the linear pose head. Measured on this sample: cnn_mixed 99.3% upright;
# gcnn_c8_canon_pose_wide_mixed 99.3% upright, 97.1% turned, 16 of 16 turned 6/9 swaps flagged (the 12-channel
# gcnn_c8_canon_pose_mixed shipped before it: 100.0%, 97.9%, 16 of 16). The same margin of about 4-5 points as the
# served pair's.
MIXED_GCNN = "gcnn_c8_canon_pose_wide_mixed"
MIXED_MODELS = {"GCNN_MODELS": f"cnn_mixed,{MIXED_GCNN}"}
MIXED_MIN_UPRIGHT = {"cnn_mixed": 0.94, MIXED_GCNN: 0.95}
MIXED_MIN_TURNED = 0.93


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


@pytest.fixture(scope="module")
def mixed_summary(sample: Path) -> Iterator[dict]:
    with running_service(ROOT / "artifacts" / "acceptance_sample_mixed_service.log", MIXED_MODELS) as (base, _):
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


def test_the_shipped_mixed_pair_reads_real_uploads_upright_and_the_gcnn_turned_too(mixed_summary: dict) -> None:
    assert mixed_summary["errors"] == 0
    for key, table in mixed_summary["table"].items():
        assert table["all"]["refused"] == 0, key
    for name, minimum in MIXED_MIN_UPRIGHT.items():
        upright = mixed_summary["table"][f"{name} | prior none | upright"]["all"]["accuracy"]
        assert upright >= minimum, (name, upright)
    turned = mixed_summary["table"][f"{MIXED_GCNN} | prior none | turned"]["all"]["accuracy"]
    assert turned >= MIXED_MIN_TURNED, turned
    swaps = mixed_summary["half_turn_mistakes"][MIXED_GCNN]
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


def test_summary_reads_each_face_upright_and_turned_and_counts_a_refusal_against_every_model() -> None:
    def answer(face: str, said: int | None, *, turned: bool = False, model: str = "m", status: int = 200) -> Answer:
        return Answer("x.png", 4, "clean", turned, "none", model, status, said, False, [], font=face)

    answers = [
        answer("Hollow", 4), answer("Hollow", 8), answer("Hollow", 4, turned=True),
        answer("Plain", 4), answer("Plain", None, model="*", status=422),  # a refusal, counted against every model
        answer("Plain", 4, model="n"), Answer("x.png", 4, "clean", False, "upright", "m", 200, 8, font="Plain"),
    ]  # fmt: skip
    by_face = summarise(answers)["by_face"]
    assert by_face["m"] == {"Hollow": {"upright": 0.5, "turned": 1.0}, "Plain": {"upright": 0.5}}  # prior none only
    assert by_face["n"] == {"Plain": {"upright": 0.5}}
    table = faces_markdown(summarise(answers))
    assert "| Hollow | 50.0% / 100.0% | - / - |" in table and "| Plain | 50.0% / - | 50.0% / - |" in table


def test_misses_by_face_counts_wrong_answers_per_face_most_first_with_refusals_against_every_model() -> None:
    def answer(face: str, said: int | None, *, turned: bool = False, model: str = "m", status: int = 200) -> Answer:
        return Answer("x.png", 4, "clean", turned, "none", model, status, said, False, [], font=face)

    answers = [
        answer("Hollow", 8), answer("Hollow", 1), answer("Plain", 8), answer("Plain", 4), answer("Bold", 4),
        answer("Hollow", 7, turned=True), answer("Plain", None, model="*", status=422),
        answer("Plain", 4, model="n"), Answer("x.png", 4, "clean", False, "upright", "m", 200, 8, font="Bold"),
    ]  # fmt: skip
    misses = summarise(answers)["misses_by_face"]
    assert list(misses["m"]["upright"].items()) == [("Hollow", 2), ("Plain", 2)]  # the refusal, not prior upright
    assert misses["m"]["turned"] == {"Hollow": 1}
    assert misses["n"] == {"upright": {"Plain": 1}, "turned": {}}
    line = misses_line("m", "upright", misses["m"]["upright"])
    assert line == "m, upright misses by face (4 in all): Hollow 2, Plain 2"
    assert misses_line("n", "turned", {}) == "n, turned misses by face (0 in all): none"


def test_seed_spread_summarises_a_model_beside_its_seed_runs_and_leaves_single_models_alone() -> None:
    def answers(model: str, right_upright: int, swaps_flagged: int) -> list[Answer]:
        made = []
        for prior, turned in (("none", False), ("none", True), ("upright", False)):
            for condition in ("clean", "low-resolution scan"):
                for index in range(2):
                    said = 1 if turned or index < right_upright else 7
                    made.append(Answer("x.png", 1, condition, turned, prior, model, 200, said, False, [said]))
        for index in range(2):  # two turned 6s read as 9s, the first ``swaps_flagged`` flagged with the 6
            flagged = index < swaps_flagged
            made.append(Answer("s.png", 6, "clean", True, "none", model, 200, 9, flagged, [9, 6] if flagged else [9]))
        return made

    summary = summarise(answers("m", 2, 2) + answers("m_seed1", 1, 1) + answers("m_seed2", 2, 0) + answers("n", 2, 2))
    spread = seed_spread(summary)
    assert list(spread) == ["m"]  # "n" has no seed runs
    values, mean, sd = spread["m"]["upright"]
    assert values == [100.0, 50.0, 100.0] and mean == pytest.approx(250 / 3) and sd == pytest.approx(28.8675, abs=1e-3)
    assert spread["m"]["turned 6/9 swaps flagged"][0] == [100.0, 50.0, 0.0]
    assert spread["m"]["low-resolution scan, upright"][0] == [100.0, 50.0, 100.0]
