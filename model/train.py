"""Train a registered model on upright digits and write a checkpoint.

    python -m model.train --model gcnn_c4_seed --epochs 10 --seed 0
    python -m model.train --model gcnn_c8_pose --synthetic data/synthetic_digits.safetensors
    torchrun --standalone --nproc_per_node=2 -m model.train --model gcnn_c8_pose   # data-parallel

Trains on the 60,000 upright MNIST training digits (no rotation augmentation:
robustness must come from the architecture), with ``--synthetic`` mixed with
the upright font digits of ``python -m bench.training_set`` (the two are
concatenated and shuffled together every epoch; ``--val-split`` holds out MNIST
digits only), with AdamW and a one-cycle learning-rate schedule. Under
``torchrun`` the same flags train data-parallel (:mod:`model.distributed`:
``--batch-size`` is the global batch, the learning rate is not scaled); rank 0
evaluates and writes. Writes ``<out-dir>/<name>.safetensors`` and
``<out-dir>/<name>.json`` (config, training arguments and data, world size,
torch version, date, training wall time, parameter count, SHA-256, and the
upright and rotated accuracy on the full test set, last checkpoint, no selection).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset
from tqdm import tqdm

from model.augment import random_shift
from model.checkpoint import count_parameters, load_checkpoint, save_checkpoint
from model.data import load_mnist, load_synthetic
from model.distributed import Workers, average_norm_statistics, data_parallel, start, stop, sum_over_workers
from model.evaluate import evaluate, evaluate_orientation
from model.networks import GroupEquivariantCNN
from model.registry import architecture_of, create_model, model_names

__all__ = ["main", "train"]

logger = logging.getLogger(__name__)


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Make glibc keep freed activation memory for the next step instead of returning it to the OS.

    Every training step allocates and frees the same large activations. By
    default glibc serves blocks over 128 KiB with fresh ``mmap`` pages and
    unmaps them on free, so each step pays page faults on tens of MB it touches
    for the first time (measured: 20-30% of a CPU step). With the mmap threshold
    at its maximum (32 MiB) and trimming off, the heap keeps them. Returns
    whether it applied (glibc only; elsewhere a no-op).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(
            libc.mallopt(option, value) == 1
            for option, value in ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
        )
    except (OSError, AttributeError):
        return False


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: str,
    max_steps: int | None = None,
    workers: Workers | None = None,
    shift: int = 0,
) -> list[dict[str, float]]:
    """Train in place; returns per-epoch mean loss and accuracy (over all processes).

    ``batch_size`` is the global batch: with ``workers.world_size`` processes each takes an equal
    share of it, from its shard of the epoch's permutation (:class:`DistributedSampler`, seed
    ``seed + epoch``), and the gradients are averaged over them (:mod:`model.distributed`). ``shift`` > 0
    moves every training image by its own whole number of pixels up to ``shift`` (:func:`model.augment.random_shift`).
    """
    workers = workers or Workers(device=device)
    if batch_size % workers.world_size:
        raise ValueError(f"--batch-size {batch_size} is not divisible by the {workers.world_size} processes")
    local_batch = batch_size // workers.world_size
    dataset = TensorDataset(images, labels)  # in memory: the sampler only needs its length
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=workers.world_size, rank=workers.rank, seed=seed
    )
    steps_per_epoch = -(-len(sampler) // local_batch)
    total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    objective = data_parallel(Objective(model), workers)
    images, labels = images.to(device), labels.to(device)
    history, step = [], 0
    model.train()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.long, device=device)
        loss_sum, batches, correct, seen = 0.0, 0, 0, 0
        bar = tqdm(order.split(local_batch), desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not workers.main)
        for batch in bar:
            loss, logits = objective(random_shift(images[batch], shift), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = loss.item()
            loss_sum, batches = loss_sum + loss_value, batches + 1
            correct += int((logits.argmax(dim=1) == labels[batch]).sum())
            seen += len(batch)
            bar.set_postfix(loss=f"{loss_value:.4f}", acc=f"{correct / seen:.4f}")
            step += 1
            if step >= total_steps:
                break
        total_loss, total_batches, total_correct, total_seen = sum_over_workers(
            [loss_sum, batches, correct, seen], workers
        )
        history.append({"epoch": epoch + 1, "loss": total_loss / total_batches, "accuracy": total_correct / total_seen})
        logger.info("epoch %d: loss %.4f, train accuracy %.4f", epoch + 1, history[-1]["loss"], history[-1]["accuracy"])
        if step >= total_steps:
            break
    average_norm_statistics(model, workers)
    model.eval()
    return history


class Objective(nn.Module):
    """The training loss as a module: what ``DistributedDataParallel`` wraps (it synchronises the
    gradients of what its ``forward`` computes, and the joint head trains through ``forward_joint``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return loss_and_logits(self.model, images, labels)


def loss_and_logits(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and the digit logits ``(B, classes)``.

    A network with a joint (digit, element) head is trained on the cell
    ``(label, identity)`` of its ``(B, classes, |G|)`` scores: the digits are
    upright, so the identity is their orientation (see :mod:`model.orientation`).
    """
    if isinstance(model, GroupEquivariantCNN) and model.config.head == "joint":
        log_joint = model.forward_joint(images)  # (B, D, G)
        identity_cells = labels * log_joint.shape[2]  # flat index of (label, element 0)
        return F.nll_loss(log_joint.flatten(1), identity_cells), torch.logsumexp(log_joint, dim=2)
    logits = model(images)
    return F.cross_entropy(logits, labels), logits


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["group=C8", "pool_after=[1,3]"]`` -> ``{"group": "C8", "pool_after": [1, 3]}``."""
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def add_overrides_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``overrides``, read by :func:`parse_overrides`."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=model_names(), help="registered model name")
    add_overrides_argument(parser, "override a config field (repeatable), e.g. --set group=C8")
    parser.add_argument("--name", help="checkpoint name (default: the model name)")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="CARD",
        help="fine-tune: start from this checkpoint (same architecture and config) instead of a fresh model",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--batch-size", type=int, default=128, help="global batch (split over the processes under torchrun)"
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first N digits of each source only (smoke runs)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument(
        "--shift",
        type=int,
        default=0,
        metavar="PIXELS",
        help="move each training image by its own whole number of pixels, up to this many each way (not a rotation)",
    )
    parser.add_argument(
        "--val-split",
        type=int,
        default=0,
        help="hold out the last N MNIST training digits as a validation set (for model selection)",
    )
    parser.add_argument("--skip-test", action="store_true", help="do not touch the test set (model selection runs)")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test digits only")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        metavar="PATH",
        help="also train on this synthetic digits file (python -m bench.training_set), mixed with MNIST",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("weights"))
    return parser


def training_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, TrainingData]:
    """The training images and labels of ``args`` (MNIST, with ``--synthetic`` the file's digits after them)
    and what the card records about them; ``--val-split`` and ``--limit`` apply to each source alone."""
    images, labels = load_mnist(train=True, root=args.data_dir)
    validation = None
    if args.val_split:
        validation = images[-args.val_split :], labels[-args.val_split :]
        images, labels = images[: -args.val_split], labels[: -args.val_split]
    images, labels = images[: args.limit], labels[: args.limit]
    record: dict[str, Any] = {"mnist": {"digits": len(images), "held_out_for_validation": args.val_split}}
    if args.synthetic is None:
        return images, labels, TrainingData(record, validation)
    synthetic = load_synthetic(args.synthetic)
    extra_images, extra_labels = synthetic.images[: args.limit], synthetic.labels[: args.limit]
    record["synthetic"] = {**synthetic.describe(args.synthetic), "digits": len(extra_images)}
    record["mix"] = {
        "how": "concatenated and shuffled together every epoch; validation (--val-split) is MNIST only",
        "mnist": len(images),
        "synthetic": len(extra_images),
        "synthetic_share": round(len(extra_images) / (len(images) + len(extra_images)), 4),
    }
    return torch.cat([images, extra_images]), torch.cat([labels, extra_labels]), TrainingData(record, validation)


@dataclass(frozen=True)
class TrainingData:
    """What the card says about the training data, and the held-out MNIST validation digits (if any)."""

    record: dict[str, Any]
    validation: tuple[torch.Tensor, torch.Tensor] | None


def main(argv: list[str] | None = None) -> Path | None:
    """Train as the arguments say; returns the card's path (``None`` on the processes other than rank 0)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        keep_freed_memory()
    workers = start(args.device)
    device = workers.device
    seed_everything(args.seed)
    model = create_model(args.model, **parse_overrides(args.overrides))
    initial = initialise_from(model, args.init) if args.init else None
    model = model.to(device)
    name = args.name or args.model
    logger.info("training %s (%d parameters) on %s", name, count_parameters(model), device)

    images, labels, data = training_data(args)
    started = time.perf_counter()
    history = train(
        model,
        images,
        labels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=device,
        max_steps=args.max_steps,
        workers=workers,
        shift=args.shift,
    )
    wall_time = time.perf_counter() - started
    stop(workers)
    if not workers.main:
        return None
    logger.info("training took %.1f s", wall_time)
    card = {
        "training": {
            **{key: _plain(value) for key, value in vars(args).items() if key not in ("out_dir", "data_dir")},
            "train_digits": len(images),
            "data": data.record,
            "initialised_from": initial,
            "world_size": workers.world_size,
            "per_process_batch_size": args.batch_size // workers.world_size,
            "wall_time_s": round(wall_time, 1),
            "device_name": torch.cuda.get_device_name(device)
            if device.startswith("cuda")
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "history": history,
        },
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": measure(model, args, data, device),
    }
    card_path = save_checkpoint(model.cpu(), args.out_dir, name, card)
    logger.info("wrote %s", card_path)
    return card_path


def measure(model: nn.Module, args: argparse.Namespace, data: TrainingData, device: str) -> dict[str, Any]:
    """The card's metrics: the MNIST validation digits (``--val-split``) and the test set (unless ``--skip-test``)."""
    metrics: dict[str, Any] = {}
    if data.validation is not None:
        validation = evaluate(model, *data.validation, per_angle=False, device=device)
        metrics["validation"] = {key: validation[key] for key in ("upright_accuracy", "rotated_accuracy")}
        logger.info(
            "validation: upright %.2f%%, rotated %.2f%%",
            100 * validation["upright_accuracy"],
            100 * validation["rotated_accuracy"],
        )
    if not args.skip_test:
        test_images, test_labels = load_mnist(train=False, root=args.data_dir)
        test_images, test_labels = test_images[: args.eval_limit], test_labels[: args.eval_limit]
        test = evaluate(model, test_images, test_labels, per_angle=False, device=device)
        metrics.update({key: value for key, value in test.items() if key != "rotated_confusion_matrix"})
        if isinstance(model, GroupEquivariantCNN) and model.config.head == "joint":
            orientation = evaluate_orientation(model, test_images, test_labels, device=device)
            metrics["orientation"] = {k: v for k, v in orientation.items() if not isinstance(v, dict)}
        logger.info(
            "test: upright %.2f%%, rotated %.2f%%", 100 * test["upright_accuracy"], 100 * test["rotated_accuracy"]
        )
    return metrics


def initialise_from(model: nn.Module, card_path: Path) -> dict[str, Any]:
    """Start from a trained checkpoint of the same architecture and config (fine-tuning); returns what the
    card records of it: its name, path, SHA-256 and what it was trained on."""
    trained, card = load_checkpoint(card_path)
    if card["architecture"] != architecture_of(model) or trained.config != model.config:
        raise SystemExit(f"--init {card_path}: its architecture or config differs from --model's (with --set)")
    model.load_state_dict(trained.state_dict())
    logger.info("initialised from %s (%s)", card["name"], card["sha256"][:12])
    previous = card.get("training", {})
    return {
        "name": card["name"],
        "card": str(card_path),
        "sha256": card["sha256"],
        "epochs": previous.get("epochs"),
        "data": previous.get("data", "MNIST training digits"),
    }


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


if __name__ == "__main__":
    main()
