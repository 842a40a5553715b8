"""Fit a trained network's pose anew, on its frozen features: a finer orientation at the cost of minutes.

    python -m model.pose_refit weights/gcnn_c8_canon_pose.json --model gcnn_c8_canon_pose_gated \\
        --name gcnn_c8_canon_pose_gated --out-dir runs/gated

Starts from a trained checkpoint (its card) and builds ``--model``, a registered network whose config
may differ from the card's only in its joint head's pose (``pose_frequencies``, ``pose_gate``, ``pose_pool``,
``pose_readers``):
every weight but the pose's is the card's, to the last bit, so the digit a network answers does not
change; its orientation, readings and ambiguity flag do. The per-element features of the training
digits (the card's training data: MNIST, ``--synthetic`` for the mixed models) are computed once, in
eval mode, and the pose weights (and the gate, :mod:`model.pose_gate`) alone are fitted to them.

The digits are upright, as in training: no rotation of any training image. The target is the one the
network was trained on, the identity, read more finely: :func:`angle_loss` asks for the profile's
mass at 0 degrees among :data:`ANGLE_LOSS_STEPS` angles (its continuous version), where the training
loss asked for it among the group's elements only, which leaves the peak anywhere within half a group
step. A canonicalising network reads each digit turned to its own axis (:mod:`model.canonical`), so
the profile it must put at 0 is, in its own frame, at the digit's own turn: every digit teaches the
pose at another angle. Writes ``<out-dir>/<name>.safetensors`` and a card: the starting card's
training record, the refit's (data, steps, seed, wall time) and the test metrics, as ``model.train``.
``--val-split N --skip-test`` holds the last N MNIST training digits out of the refit and prints the
orientation on them before and after it: how the refit's settings are chosen without the test set.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from model.checkpoint import count_parameters, load_checkpoint, save_checkpoint
from model.evaluate import evaluate_orientation
from model.networks import GroupEquivariantCNN
from model.orientation import JointHead, pose_profile, shifted_profile
from model.registry import architecture_of, create_model, model_names
from model.train import add_overrides_argument, measure, parse_overrides, seed_everything, training_data

__all__ = ["ANGLE_LOSS_STEPS", "angle_loss", "per_element_features", "refit", "start_from"]

logger = logging.getLogger(__name__)
ANGLE_LOSS_STEPS = 72  # 5 degrees apart: finer than a group step of C8 (45) by 9x
# what a refit may change of the card's config
POSE_FIELDS = ("pose_frequencies", "pose_gate", "pose_pool", "pose_readers")
HELD_OUT_MEASURES = (
    "rotated_orientation_median_error",
    "rotated_orientation_within_22_5",
    "upright_orientation_median_error",
    "upright_orientation_within_22_5",
)


def angle_loss(coefficients: torch.Tensor, labels: torch.Tensor, steps: int = ANGLE_LOSS_STEPS) -> torch.Tensor:
    """``-log`` of the true digit's pose profile at 0 degrees, normalised over ``steps`` angles around the circle
    (mean over the batch); ``coefficients`` ``(B, D, M, 2)`` of the input as it came, ``labels`` ``(B,)``."""
    frequencies = coefficients.shape[2]
    theta = torch.arange(steps, dtype=coefficients.dtype, device=coefficients.device) * (2 * math.pi / steps)
    m = torch.arange(1, frequencies + 1, dtype=coefficients.dtype, device=coefficients.device)
    own = coefficients[torch.arange(len(labels)), labels][:, None]  # (B, 1, M, 2): the true digit's
    profile = pose_profile(own, torch.cos(theta[:, None] * m), torch.sin(theta[:, None] * m))[:, 0]  # (B, A)
    return F.cross_entropy(profile, torch.zeros_like(labels))


def start_from(
    card_path: Path, name: str, overrides: dict[str, Any] | None = None
) -> tuple[GroupEquivariantCNN, dict[str, Any]]:
    """The registered network ``name`` (with config ``overrides``) with every weight of the card's network but its
    pose's; the card.

    Raises:
        SystemExit: the card's network is not ``name``'s but for :data:`POSE_FIELDS`, or has no joint head.
    """
    trained, card = load_checkpoint(card_path)
    model = create_model(name, **(overrides or {}))
    if not isinstance(trained, GroupEquivariantCNN):
        raise SystemExit(f"{card_path}: not a G-CNN")
    if not isinstance(model, GroupEquivariantCNN) or not isinstance(model.head, JointHead):
        raise SystemExit(f"--model {name}: not a G-CNN with a joint head")
    pose = {field: getattr(model.config, field) for field in POSE_FIELDS}
    if card["architecture"] != architecture_of(model) or dataclasses.replace(trained.config, **pose) != model.config:
        raise SystemExit(f"{card_path}: its network differs from {name}'s in more than {', '.join(POSE_FIELDS)}")
    kept = {key: value for key, value in trained.state_dict().items() if not key.startswith(("head.pose", "head.gate"))}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not key.startswith(("head.pose", "head.gate")) for key in missing):
        raise SystemExit(f"{card_path}: weights do not fit {name} (missing {missing}, unexpected {unexpected})")
    return model, card


@torch.inference_mode()
def per_element_features(
    model: GroupEquivariantCNN, images: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the pose is read from, in eval mode: the head's per-element features ``z`` ``(N, C', |G|)``
    (:meth:`~model.orientation.JointHead.per_element`) and, for a canonicalising network, the turn ``(N,)``
    (degrees) each input was read at (else ``None``)."""
    model.eval()
    head = cast(JointHead, model.head)
    features, turns = [], []
    for chunk in images.split(batch_size):
        maps, turn = model.canonical_features(chunk)
        features.append(head.per_element(maps))
        if turn is not None:
            turns.append(turn.float())
    return torch.cat(features), (torch.cat(turns) if turns else None)


def refit(
    head: JointHead,
    features: torch.Tensor,
    turns: torch.Tensor | None,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
) -> list[float]:
    """Fit the head's pose weights and gates (nothing else) to per-element features ``(N, C', |G|)`` of upright
    digits by :func:`angle_loss`: AdamW, a cosine schedule; returns the loss of every 100th step (the mean over
    the readers).

    Each reader is fitted apart, on batches of its own, to its own loss: the readers share no weight, so one
    optimizer over the sum of their losses fits each as if alone (AdamW's steps are per weight), and they differ
    by their starting weights and their batches, as an ensemble's members do."""
    trained = [head.pose, *head.gates.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    head.train()
    history = []
    for step in range(steps):
        losses = []
        for reader in range(head.readers):
            batch = torch.randint(0, len(labels), (batch_size,))
            coefficients = head.reader_coefficients(features[batch], reader)  # (B, D, M, 2)
            if turns is not None:
                coefficients = shifted_profile(coefficients, turns[batch])  # the profile of the input as it came
            losses.append(angle_loss(coefficients, labels[batch]))
        loss = torch.stack(losses).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            history.append(round(loss.item() / head.readers, 4))
    head.eval()
    return history


def held_out_orientation(
    card_path: Path, model: GroupEquivariantCNN, validation: tuple[torch.Tensor, torch.Tensor], seed: int
) -> dict[str, dict[str, float]]:
    """The orientation on held-out training digits (each turned by its own random angle from ``seed``) of the
    card's network and of the refitted one: median error and the share within 22.5 degrees; printed too."""
    trained, _ = load_checkpoint(card_path)
    found = {}
    for label, network in (("before", trained), ("after", model)):
        report = evaluate_orientation(network, *validation, seed=seed)  # type: ignore[arg-type]
        found[label] = {key: report[key] for key in HELD_OUT_MEASURES}
        logger.info(
            "held-out digits (%d), %s the refit: orientation median %.2f°, within 22.5° %.2f%% (turned); "
            "median %.2f°, within 22.5° %.2f%% (upright)",
            len(validation[1]),
            label,
            *(found[label][key] * (100 if "within" in key else 1) for key in HELD_OUT_MEASURES),
        )
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("card", type=Path, help="the trained checkpoint's JSON card")
    parser.add_argument("--model", required=True, choices=model_names(), help="registered network to refit into")
    add_overrides_argument(parser, "override a pose field of --model's config (repeatable), e.g. --set pose_gate=64")
    parser.add_argument("--name", required=True, help="checkpoint name")
    parser.add_argument("--synthetic", type=Path, default=None, help="the synthetic digits the card was trained on")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="first N training digits of each source only")
    parser.add_argument(
        "--val-split",
        type=int,
        default=0,
        help="hold out the last N MNIST training digits and print the orientation on them before and after the "
        "refit (each turned by its own random angle from --seed): settings chosen without the test set",
    )
    parser.add_argument("--skip-test", action="store_true", help="do not touch the test set")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test digits only")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--out-dir", type=Path, default=Path("weights"))
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    model, card = start_from(args.card, args.model, parse_overrides(args.overrides))
    images, labels, data = training_data(args)
    started = time.perf_counter()
    features, turns = per_element_features(model, images)
    logger.info("features of %d training digits in %.1f s", len(labels), time.perf_counter() - started)
    history = refit(
        model.head,  # type: ignore[arg-type]  # a JointHead: start_from checked
        features,
        turns,
        labels,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
    )
    wall_time = time.perf_counter() - started
    logger.info("refit %s (%d parameters) in %.1f s: loss %s -> %s", args.name, count_parameters(model), wall_time,
                history[0], history[-1])  # fmt: skip
    record = {
        "from": {"name": card["name"], "card": str(args.card), "sha256": card["sha256"]},
        "model": args.model,
        "overrides": parse_overrides(args.overrides),
        "data": data.record,
        "train_digits": len(labels),
        "loss": f"angle_loss over {ANGLE_LOSS_STEPS} angles (model.pose_refit)",
        **{key: getattr(args, key) for key in ("steps", "batch_size", "lr", "weight_decay", "seed")},
        "wall_time_s": round(wall_time, 1),
        "torch_threads": torch.get_num_threads(),
        "loss_every_100_steps": history,
    }
    metrics = measure(model, args, data, "cpu")
    if data.validation is not None:
        metrics["validation_orientation"] = held_out_orientation(args.card, model, data.validation, args.seed)
    refit_card = {
        "training": card.get("training", {}),  # the convolutions' and the digit head's: the card's
        "pose_refit": record,
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
    }
    card_path = save_checkpoint(model, args.out_dir, args.name, refit_card)
    logger.info("wrote %s", card_path)
    return card_path


if __name__ == "__main__":
    main()
