"""bench.mnist_uploads: MNIST test digits made into the service's input as uploads are, and counted as
bench.acceptance counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.mnist_uploads import as_uploads, main, right_answers
from model.centring import mass_quarter_turn
from model.data import load_mnist
from tests.helpers import pose_on_cells


def test_uploads_of_turned_digits_have_their_mass_where_an_upright_digit_has_it_whatever_the_turn() -> None:
    images, _ = load_mnist(train=False)
    digits = images[:4]
    for degrees in (0.0, 90.0, 180.0, 37.0):
        inputs = as_uploads(digits, np.full(len(digits), degrees))
        assert inputs.shape == (4, 1, 28, 28) and float(inputs.max()) == pytest.approx(1.0)
        assert mass_quarter_turn(inputs).tolist() == [0, 0, 0, 0]  # the made-up cue: "upright"
    upright = as_uploads(digits, np.zeros(len(digits)))
    # an upright upload is the MNIST digit again, up to the resampling: the same pixels are ink (measured: 98%)
    assert float(((upright > 0.5) == (digits > 0.5)).double().mean()) > 0.95


def test_a_half_turn_swap_is_right_only_for_a_turned_digit_flagged_with_the_true_digit_among_its_readings() -> None:
    labels = torch.tensor([6, 6, 6, 3, 6])
    pose = pose_on_cells(
        [
            {(9, 0): 0.55, (6, 180): 0.45},  # a flagged swap
            {(9, 0): 0.99, (6, 180): 0.01},  # a sure swap: not flagged
            {(6, 180): 1.0},  # right
            {(8, 0): 0.6, (3, 90): 0.4},  # not a 6/9 swap: wrong even when flagged
            {(9, 0): 0.5, (8, 0): 0.3, (3, 0): 0.15, (6, 180): 0.05},  # flagged, but 6 not among the 3 readings
        ]
    )
    assert right_answers(pose, labels, turned=True).tolist() == [True, False, True, False, False]
    assert right_answers(pose, labels, turned=False).tolist() == [False, False, True, False, False]


def test_the_table_reads_the_served_model_every_way_from_protocol_to_upload(capsys: pytest.CaptureFixture) -> None:
    main(["--count", "20"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `gcnn_c8_pose`")]
    readings = [row.split(" | ")[1] for row in rows]
    assert readings == [
        "protocol",
        "mass at (14, 14)",
        "mass at (14, 14), centred reading, lean 0",
        "mass at (14, 14), centred reading, lean 1",
        "drawn large, centred reading, lean 0",
        "drawn large, centred reading, lean 1",
    ]
    for row in rows:
        cells = [float(cell.rstrip("%")) for cell in row.rstrip(" |").split(" | ")[2:]]
        assert len(cells) == 5 and all(0.0 <= cell <= 100.0 for cell in cells)
