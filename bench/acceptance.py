"""The realistic acceptance set through the real service: accuracy per condition, refusals.

    python -m bench.acceptance                       # generates data/acceptance if needed, starts the service
    python -m bench.acceptance --url http://127.0.0.1:8000 --json runs/acceptance.json

Starts the service as ``make serve`` does (``python -m app.guard.server`` on a free
loopback port, the shipped weights and default settings) unless ``--url`` names
a running one, then sends every image of the set (:mod:`bench.acceptance_set`)
as it is through ``POST /classify`` (multipart, default preprocessing, no
transform), once with ``orientation_prior=none`` and, for the upright half,
once more with ``orientation_prior=upright``. A reading counts as right when
the model's digit is the true one; for a turned 6 or 9 (which no
rotation-invariant answer can get right in every font), also when the answer is
flagged ``ambiguous`` and the true digit is among its readings. A ``no-ink``
(422) answer is a refusal; any other non-200 answer is an error.

Prints one table per model: accuracy and refusals per condition, upright and
turned, with the totals, and how many turned 6s and 9s were read as each other
and how many of those answers were flagged ambiguous, then one table of every face (upright / turned
per model: which styles a model reads worst); ``--json`` keeps every answer.
Served models named ``<name>`` and ``<name>_seed<N>`` (one training command, several seeds, e.g. from
``GCNN_WEIGHTS_DIR``) are also summarised together: every seed's value, the mean and the sample sd
(:func:`seed_spread`).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.acceptance_set import generate
from bench.loadtest import free_port
from model.spread import spread_line

__all__ = ["Answer", "evaluate", "main", "seed_spread", "summarise"]

logger = logging.getLogger(__name__)
HALF_TURN_PAIRS = {6: 9, 9: 6}


@dataclass
class Answer:
    """What one model said about one image."""

    file: str
    digit: int
    condition: str
    turned: bool
    prior: str
    model: str
    status: int
    answer: int | None = None
    ambiguous: bool = False
    readings: list[int] = field(default_factory=list)
    font: str = ""  # the face it was drawn with (labels.csv)

    @property
    def refused(self) -> bool:
        return self.status == 422

    @property
    def swapped(self) -> bool:
        """A turned digit read as its half-turn partner (a 6 as a 9, a 9 as a 6)."""
        return self.turned and HALF_TURN_PAIRS.get(self.digit) == self.answer

    @property
    def right(self) -> bool:
        if self.answer == self.digit:
            return True
        return self.swapped and self.ambiguous and self.digit in self.readings


def _post(base: str, path: str, data: bytes, filename: str) -> tuple[int, dict[str, Any]]:
    host, port = base.removeprefix("http://").split(":")
    boundary = "acceptance-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request(
            "POST", path, body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _classify(base: str, folder: Path, row: dict[str, str], prior: str) -> list[Answer]:
    status, body = _post(base, f"/classify?orientation_prior={prior}", (folder / row["file"]).read_bytes(), row["file"])
    refused = Answer(
        file=row["file"],
        digit=int(row["digit"]),
        condition=row["condition"],
        turned=row["turned"] == "1",
        prior=prior,
        model="*",  # a non-200 answer is every model's
        status=status,
        font=row.get("font", ""),
    )
    if status != 200:
        return [refused]
    return [
        replace(
            refused,
            model=p["model"],
            answer=p["digit"],
            ambiguous=p.get("ambiguous", False),
            readings=[r["digit"] for r in p.get("readings", [])],
        )
        for p in body["predictions"]
    ]


def evaluate(base: str, folder: Path, workers: int = 4) -> list[Answer]:
    """Every image of ``folder`` (with its ``labels.csv``) through ``POST /classify``, ``workers`` at a time."""
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    jobs = [(row, "none") for row in rows] + [(row, "upright") for row in rows if row["turned"] == "0"]
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda job: _classify(base, folder, *job), jobs)
        return [answer for answers in results for answer in answers]


def summarise(answers: list[Answer]) -> dict[str, Any]:
    """Per model, prior and orientation: accuracy and refusals by condition and in all."""
    models = sorted({a.model for a in answers if a.model != "*"})
    refusals = [a for a in answers if a.model == "*"]
    table: dict[str, Any] = {}
    for model in models:
        for prior in ("none", "upright"):
            for turned in (False, True):
                key = f"{model} | prior {prior} | {'turned' if turned else 'upright'}"
                group = [a for a in answers if a.prior == prior and a.turned == turned and a.model in (model, "*")]
                if not group:
                    continue
                by_condition: dict[str, list[Answer]] = defaultdict(list)
                for answer in group:
                    by_condition[answer.condition].append(answer)
                table[key] = {condition: _rates(items) for condition, items in [*by_condition.items(), ("all", group)]}
    half_turn = {model: _half_turn_mistakes([a for a in answers if a.model == model]) for model in models}
    return {
        "models": models,
        "table": table,
        "by_face": _by_face(answers, models),
        "misses_by_face": _misses_by_face(answers, models),
        "half_turn_mistakes": half_turn,
        "errors": sum(1 for a in refusals if not a.refused),
    }


def _by_face(answers: list[Answer], models: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and face (``orientation_prior=none``): the accuracy on its upright and on its turned digits.
    A refusal counts against every model, as in the table by condition."""
    faces = sorted({a.font for a in answers if a.font})
    result: dict[str, dict[str, dict[str, float]]] = {}
    for model in models:
        result[model] = {}
        for face in faces:
            mine = [a for a in answers if a.font == face and a.prior == "none" and a.model in (model, "*")]
            if not any(a.model == model for a in mine):
                continue
            result[model][face] = {
                orientation: sum(a.right for a in group) / len(group)
                for orientation, group in (
                    ("upright", [a for a in mine if not a.turned]),
                    ("turned", [a for a in mine if a.turned]),
                )
                if group
            }
    return result


def _misses_by_face(answers: list[Answer], models: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Per model and orientation (``orientation_prior=none``): how many of its wrong answers fell on each face,
    most first (faces without a miss left out). A refusal counts against every model, as in the tables."""
    result: dict[str, dict[str, dict[str, int]]] = {}
    for model in models:
        counts: dict[str, Counter[str]] = {"upright": Counter(), "turned": Counter()}
        for a in answers:
            if a.font and a.prior == "none" and a.model in (model, "*") and not a.right:
                counts["turned" if a.turned else "upright"][a.font] += 1
        result[model] = {orientation: dict(found.most_common()) for orientation, found in counts.items()}
    return result


def misses_line(model: str, orientation: str, misses: dict[str, int]) -> str:
    """One printed line: a model's misses on upright (or turned) digits, in all and by face, most first."""
    faces = ", ".join(f"{face} {count}" for face, count in misses.items()) or "none"
    return f"{model}, {orientation} misses by face ({sum(misses.values())} in all): {faces}"


def _half_turn_mistakes(answers: list[Answer]) -> dict[str, int]:
    """Turned digits (prior ``none``) read as their half-turn partner (a 6 as a 9, a 9 as a 6), and how
    many of those answers were flagged ``ambiguous`` with the true digit among the readings."""
    swapped = [a for a in answers if a.prior == "none" and a.swapped]
    return {"mistakes": len(swapped), "flagged": sum(a.right for a in swapped)}  # a flagged swap counts as right


def _rates(answers: list[Answer]) -> dict[str, float | int]:
    return {
        "images": len(answers),
        "accuracy": sum(a.right for a in answers) / len(answers),
        "refused": sum(a.refused for a in answers),
    }


SPREAD_MEASURES = [  # (label, table key's tail, condition): accuracies in percent
    ("upright", "prior none | upright", "all"),
    ("turned", "prior none | turned", "all"),
    ("low-resolution scan, upright", "prior none | upright", "low-resolution scan"),
    ("low-resolution scan, turned", "prior none | turned", "low-resolution scan"),
    ("upright, prior upright", "prior upright | upright", "all"),
]


def seed_spread(summary: dict[str, Any]) -> dict[str, dict[str, tuple[list[float], float, float]]]:
    """For every model served beside its ``_seed<N>`` runs: per measure (:data:`SPREAD_MEASURES`, and the share of
    turned 6/9 swaps flagged), ``(values in seed order, mean, sample sd)``; the bare name is seed 0."""
    seeds: dict[str, dict[int, str]] = defaultdict(dict)
    for model in summary["models"]:
        match = re.fullmatch(r"(.+)_seed(\d+)", model)
        base, seed = (match.group(1), int(match.group(2))) if match else (model, 0)
        seeds[base][seed] = model
    spread: dict[str, dict[str, tuple[list[float], float, float]]] = {}
    for base, runs in seeds.items():
        if len(runs) < 2:
            continue
        names = [runs[seed] for seed in sorted(runs)]
        measures: dict[str, list[float]] = {
            label: [100 * summary["table"][f"{name} | {key}"][condition]["accuracy"] for name in names]
            for label, key, condition in SPREAD_MEASURES
        }
        swaps = [summary["half_turn_mistakes"][name] for name in names]
        measures["turned 6/9 swaps flagged"] = [
            100 * s["flagged"] / s["mistakes"] if s["mistakes"] else 100.0 for s in swaps
        ]
        spread[base] = {
            label: (values, statistics.mean(values), statistics.stdev(values)) for label, values in measures.items()
        }
    return spread


def markdown(summary: dict[str, Any], model: str, prior: str = "none") -> str:
    """The per-condition table of one model: accuracy upright / turned, refusals."""
    upright = summary["table"].get(f"{model} | prior {prior} | upright", {})
    turned = summary["table"].get(f"{model} | prior {prior} | turned", {})
    rows = [f"| condition | {model} upright | turned | refused |", "|---|---|---|---|"]
    for condition in [c for c in upright if c != "all"] + ["all"]:
        u, t = upright[condition], turned.get(condition, {"accuracy": float("nan"), "refused": 0})
        name = f"**{condition}**" if condition == "all" else condition
        rows.append(
            f"| {name} | {100 * u['accuracy']:.1f}% | {100 * t['accuracy']:.1f}% | {u['refused'] + t['refused']} |"
        )
    return "\n".join(rows)


def faces_markdown(summary: dict[str, Any]) -> str:
    """Every face of the set, one row each: each model's accuracy upright / turned (``orientation_prior=none``)."""
    models = summary["models"]
    faces = sorted({face for model in models for face in summary["by_face"].get(model, {})})
    rows = ["| face | " + " | ".join(f"{model} upright / turned" for model in models) + " |"]
    rows.append("|---|" + "---|" * len(models))
    for face in faces:
        cells = []
        for model in models:
            rates = summary["by_face"][model].get(face, {})
            cells.append(" / ".join(f"{100 * rates[o]:.1f}%" if o in rates else "-" for o in ("upright", "turned")))
        rows.append(f"| {face} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


@contextmanager
def service(log_path: Path) -> Iterator[str]:
    """The service as ``make serve`` runs it, on a free loopback port; stopped on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.guard.server", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"the service did not become ready; see {log_path}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, default=Path("data/acceptance"), help="the set (generated if missing)")
    parser.add_argument("--url", default=None, help="a running service (default: start one)")
    parser.add_argument("--workers", type=int, default=4, help="requests in flight")
    parser.add_argument("--json", type=Path, default=None, help="write the summary and every answer here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (args.set / "labels.csv").is_file():
        generate(args.set)
    started = time.perf_counter()
    if args.url:
        answers = evaluate(args.url, args.set, args.workers)
    else:
        with service(Path("artifacts/acceptance_service.log")) as base:
            answers = evaluate(base, args.set, args.workers)
    summary = summarise(answers)
    logger.info(
        "%d answers in %.0f s; %d errors (non-200, non-422)",
        len(answers),
        time.perf_counter() - started,
        summary["errors"],
    )
    for model in summary["models"]:
        print(f"\n{model}, orientation_prior=none:\n{markdown(summary, model)}")
    for model in summary["models"]:
        upright = summary["table"].get(f"{model} | prior upright | upright", {}).get("all")
        if upright:
            print(f"{model}, upright digits with orientation_prior=upright: {100 * upright['accuracy']:.1f}%")
    for model in summary["models"]:
        half_turn = summary["half_turn_mistakes"][model]
        share = f" ({100 * half_turn['flagged'] / half_turn['mistakes']:.0f}%)" if half_turn["mistakes"] else ""
        print(
            f"{model}, turned 6s and 9s read as each other: {half_turn['mistakes']}, "
            f"flagged ambiguous with the true digit among the readings: {half_turn['flagged']}{share}"
        )
    if any(summary["by_face"].values()):
        print(f"\nBy face, orientation_prior=none:\n{faces_markdown(summary)}")
        for model in summary["models"]:
            for orientation, misses in summary["misses_by_face"][model].items():
                print(misses_line(model, orientation, misses))
    for base, measures in seed_spread(summary).items():
        print(f"\n{base}: seeds summarised together (the bare name is seed 0)")
        for label, (values, mean, sd) in measures.items():
            print(spread_line(label, values, mean, sd))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"summary": summary, "answers": [vars(a) for a in answers]}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
