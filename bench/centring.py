"""How strongly the centred reading leans towards upright, chosen on the acceptance set made for tuning.

    python -m bench.centring                                   # data/acceptance_tune (seed 1), gcnn_c8_pose
    python -m bench.centring --set data/acceptance_tune weights/gcnn_c8_pose.json runs/x/other.json
    python -m bench.centring --mnist 5000                      # also MNIST test digits, upright and rotated
    python -m bench.centring runs/x/other.json --choose        # write the lean chosen for it into its card

Reads every image of an acceptance set (:mod:`bench.acceptance_set`, generated
with ``--seed 1`` when missing: not the reported set, seed 0) as the service
reads it (the same decoding and default preprocessing, in process), then each
model's answer: as the network reads the input (``plain``, the cue of MNIST's
centre of mass left as preprocessing made it) and with
:func:`model.centring.centred_pose` at every lean of ``--leans``. Counts as
:mod:`bench.acceptance` does (a turned 6 or 9 read as its partner is right when
flagged ambiguous with the true digit among the readings) and prints, per
model and reading: upright and turned accuracy (``orientation_prior=none``),
upright with ``orientation_prior=upright``, the turned 6/9 swaps and how many
were flagged, and how many answers in all were flagged (how many of them 6s and
9s). With ``--mnist N``, also the first ``N`` MNIST test digits, upright and
turned as the evaluation protocol turns them (seed 0), passed through as they
are: the network's accuracy against the service's reading
(:func:`model.centring.predict_centred`).

With ``--choose``, the lean of each card is chosen by the rule (:func:`choose`:
the largest upright + turned accuracy among the leans that flag at least 90% of
the turned 6/9 swaps) and written into the card with the readings it was chosen
from; the service then reads that network at that lean
(:func:`model.centring.chosen_lean`), every other at
:data:`model.centring.CENTRING_CONCENTRATION`, the lean chosen so for ``gcnn_c8_pose``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from app.pictures.decoding import model_input
from app.pictures.preprocessing import PreprocessMode
from bench.acceptance import Answer, summarise
from bench.acceptance_set import generate
from model.centring import CARD_SECTION, CENTRING_CONCENTRATION, centred_pose, mass_quarter_turn, predict_centred
from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.evaluate import rotated_test_set
from model.orientation import Pose, angles, upright_prior
from model.serving import as_serving

__all__ = ["Reading", "answers", "choose", "main", "measure", "model_inputs", "record"]

SWAPS_FLAGGED = 0.9  # the target for the flag: a lean must keep it
MAX_PIXELS = 40_000_000  # the service's default decode limit is larger than any image of the set


def model_inputs(folder: Path) -> tuple[list[dict[str, str]], torch.Tensor]:
    """The set's labels and its ``(N, 1, 28, 28)`` inputs, preprocessed as the service does by default."""
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    images = [model_input((folder / row["file"]).read_bytes(), MAX_PIXELS, PreprocessMode.AUTO) for row in rows]
    return rows, torch.from_numpy(np.stack(images))[:, None]


def answers(rows: list[dict[str, str]], pose: Pose, model: str) -> list[Answer]:
    """What ``pose`` answers for every row, with no prior, and with the upright prior for the upright rows."""
    found: list[Answer] = []
    for prior in ("none", "upright"):
        weighed = pose if prior == "none" else pose.with_prior(upright_prior(angles()))
        readings = weighed.top_readings(3)
        ambiguous = readings.ambiguous().tolist()
        for index, row in enumerate(rows):
            if prior == "upright" and row["turned"] == "1":
                continue
            found.append(
                Answer(
                    file=row["file"],
                    digit=int(row["digit"]),
                    condition=row["condition"],
                    turned=row["turned"] == "1",
                    prior=prior,
                    model=model,
                    status=200,
                    answer=int(readings.digits[index, 0]),
                    ambiguous=ambiguous[index],
                    readings=[int(d) for d in readings.digits[index]],
                )
            )
    return found


@dataclass(frozen=True)
class Reading:
    """What one reading of a network scores on the tuning set (accuracies as fractions)."""

    upright: float
    turned: float
    upright_with_prior: float
    swaps: int  # turned 6s and 9s read as each other
    swaps_flagged: int  # of them, flagged ambiguous with the true digit among the readings
    flagged: int  # answers flagged in all (prior none)
    flagged_six_nine: int  # of them, 6s and 9s


def measure(name: str, answers_: list[Answer]) -> Reading:
    """One model's answers counted as :mod:`bench.acceptance` counts them."""
    summary = summarise(answers_)
    table, half_turn = summary["table"], summary["half_turn_mistakes"][name]
    flagged = [a for a in answers_ if a.prior == "none" and a.ambiguous]
    return Reading(
        upright=table[f"{name} | prior none | upright"]["all"]["accuracy"],
        turned=table[f"{name} | prior none | turned"]["all"]["accuracy"],
        upright_with_prior=table[f"{name} | prior upright | upright"]["all"]["accuracy"],
        swaps=half_turn["mistakes"],
        swaps_flagged=half_turn["flagged"],
        flagged=len(flagged),
        flagged_six_nine=sum(a.digit in (6, 9) for a in flagged),
    )


def choose(readings: dict[float, Reading]) -> float:
    """The rule (docs/orientation.md): among the leans whose reading flags at least :data:`SWAPS_FLAGGED` of
    the turned 6/9 swaps, the one with the largest upright + turned accuracy (the smaller lean on a tie).

    Raises:
        ValueError: no lean flags enough of the swaps.
    """
    eligible = [lean for lean, r in readings.items() if r.swaps_flagged >= SWAPS_FLAGGED * r.swaps]
    if not eligible:
        raise ValueError(f"no lean flags {SWAPS_FLAGGED:.0%} of the turned 6/9 swaps")
    # rounded: sums of fractions equal in exact arithmetic may differ in their last bit
    return max(sorted(eligible), key=lambda lean: round(readings[lean].upright + readings[lean].turned, 9))


def record(card_path: Path, readings: dict[float, Reading], tuning_set: Path) -> float:
    """Write the chosen lean and the readings it was chosen from into the card (:data:`CARD_SECTION`); the card
    is replaced whole (written beside it, then renamed), so a failure leaves it as it was.

    Raises:
        SystemExit: no lean flags enough of the swaps (the card is left as it was).
    """
    try:
        lean = choose(readings)
    except ValueError as error:
        raise SystemExit(f"{card_path}: {error}; no lean written") from error
    card = json.loads(card_path.read_text())
    leans = " ".join(f"{value:g}" for value in sorted(readings))
    card[CARD_SECTION] = {
        "lean": lean,
        "chosen_by": f"python -m bench.centring {card_path} --set {tuning_set} --leans {leans} --choose",
        "rule": f"the largest upright + turned accuracy among the leans that flag >= {SWAPS_FLAGGED:.0%} of the "
        "turned 6/9 swaps",
        "tuning_set": str(tuning_set),
        "readings": {f"{value:g}": asdict(reading) for value, reading in sorted(readings.items())},
    }
    written = card_path.with_name(card_path.name + ".tmp")
    written.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(written, card_path)
    return lean


def _cells(r: Reading) -> str:
    """The table's measure cells for one reading."""
    return (
        f"{100 * r.upright:.2f}% | {100 * r.turned:.2f}% | {100 * r.upright_with_prior:.2f}% "
        f"| {r.swaps_flagged} of {r.swaps} | {r.flagged} ({r.flagged_six_nine} of them 6s and 9s) |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", nargs="*", type=Path, default=[Path("weights/gcnn_c8_pose.json")])
    parser.add_argument("--set", type=Path, default=Path("data/acceptance_tune"), help="generated (seed 1) if missing")
    parser.add_argument("--leans", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0, 1.5, 2.0])
    parser.add_argument("--mnist", type=int, default=0, help="also this many MNIST test digits (GCNN_DATA_DIR)")
    parser.add_argument("--choose", action="store_true", help="write each card's lean, chosen by the rule")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (args.set / "labels.csv").is_file():
        generate(args.set, seed=1)
    rows, images = model_inputs(args.set)
    print(f"{args.set}: {len(rows)} images; the default lean is {CENTRING_CONCENTRATION}\n")
    print("| model | reading | upright | turned | upright, prior upright | turned 6/9 swaps flagged | flagged in all |")
    print("|---|---|---|---|---|---|---|")
    chosen: dict[Path, float] = {}
    for card in args.cards:
        module, _ = load_checkpoint(card)
        network = as_serving(module.eval())
        name = card.stem
        with torch.inference_mode():
            plain = network.predict(images).pose
            if plain is None:
                raise SystemExit(f"{card}: the network has no pose (a joint head is needed)")
            print(f"| `{name}` | plain | {_cells(measure(name, answers(rows, plain, name)))}")
            readings: dict[float, Reading] = {}
            for lean in args.leans:
                pose = centred_pose(network, images, concentration=lean)
                readings[lean] = measure(name, answers(rows, pose, name))
                print(f"| `{name}` | centred, lean {lean:g} | {_cells(readings[lean])}")
        if args.choose:
            chosen[card] = record(card, readings, args.set)
    for card, lean in chosen.items():
        print(f"\n{card}: lean {lean:g} chosen and written to the card ({CARD_SECTION})")
    if args.mnist:
        _mnist(args.cards, args.mnist)


def _mnist(cards: list[Path], count: int) -> None:
    images, labels = load_mnist(train=False)
    images, labels = images[:count], labels[:count]
    rotated, _ = rotated_test_set(images, seed=0)
    print(f"\nMNIST test digits 0-{count - 1}, passed through as they are:\n")
    print("| model | digits | read centred | the network | the service's reading |")
    print("|---|---|---|---|---|")
    for card in cards:
        module, _ = load_checkpoint(card)
        network = as_serving(module.eval())
        for split, inputs in (("upright", images), ("rotated", rotated)):
            with torch.inference_mode():
                plain = network.predict(inputs).probabilities.argmax(dim=1)
                served = predict_centred(network, inputs).probabilities.argmax(dim=1)
            share = 100 * float((mass_quarter_turn(inputs) >= 0).double().mean())
            network_accuracy = 100 * float((plain == labels).double().mean())
            served_accuracy = 100 * float((served == labels).double().mean())
            print(f"| `{card.stem}` | {split} | {share:.1f}% | {network_accuracy:.2f}% | {served_accuracy:.2f}% |")


if __name__ == "__main__":
    main()
