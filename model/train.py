"""Train a registered model on upright MNIST and write a checkpoint.

    python -m model.train --model gcnn_c4_seed --epochs 10 --seed 0

Trains on the 60,000 upright training digits only (no rotation augmentation:
robustness must come from the architecture), with AdamW and a one-cycle
learning-rate schedule. Writes ``<out-dir>/<name>.safetensors`` and
``<out-dir>/<name>.json`` (config, training arguments, torch version, date,
training wall time, parameter count, SHA-256, and the upright and rotated
accuracy on the full test set, last checkpoint, no selection).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from model.checkpoint import count_parameters, save_checkpoint
from model.data import load_mnist
from model.evaluate import evaluate, evaluate_orientation
from model.networks import GroupEquivariantCNN
from model.registry import create_model, model_names

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
) -> list[dict[str, float]]:
    """Train in place; returns per-epoch mean loss and accuracy."""
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(images) // batch_size)
    total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    images, labels = images.to(device), labels.to(device)
    history, step = [], 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        losses, correct, seen = [], 0, 0
        bar = tqdm(order.split(batch_size), desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        for batch in bar:
            loss, logits = loss_and_logits(model, images[batch], labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            correct += int((logits.argmax(dim=1) == labels[batch]).sum())
            seen += len(batch)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{correct / seen:.4f}")
            step += 1
            if step >= total_steps:
                break
        history.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses), "accuracy": correct / seen})
        logger.info("epoch %d: loss %.4f, train accuracy %.4f", epoch + 1, history[-1]["loss"], history[-1]["accuracy"])
        if step >= total_steps:
            break
    model.eval()
    return history


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=model_names(), help="registered model name")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable), e.g. --set group=C8",
    )
    parser.add_argument("--name", help="checkpoint name (default: the model name)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N digits only (smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument(
        "--val-split",
        type=int,
        default=0,
        help="hold out the last N training digits as a validation set (for model selection)",
    )
    parser.add_argument("--skip-test", action="store_true", help="do not touch the test set (model selection runs)")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test digits only")
    parser.add_argument("--data-dir", default=None, help="MNIST root (default $GCNN_DATA_DIR or data/)")
    parser.add_argument("--out-dir", type=Path, default=Path("weights"))
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        keep_freed_memory()
    seed_everything(args.seed)
    model = create_model(args.model, **parse_overrides(args.overrides)).to(args.device)
    name = args.name or args.model
    logger.info("training %s (%d parameters) on %s", name, count_parameters(model), args.device)

    images, labels = load_mnist(train=True, root=args.data_dir)
    if args.val_split:
        val_images, val_labels = images[-args.val_split :], labels[-args.val_split :]
        images, labels = images[: -args.val_split], labels[: -args.val_split]
    images, labels = images[: args.limit], labels[: args.limit]
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
        device=args.device,
        max_steps=args.max_steps,
    )
    wall_time = time.perf_counter() - started
    logger.info("training took %.1f s", wall_time)

    metrics: dict[str, Any] = {}
    if args.val_split:
        validation = evaluate(model, val_images, val_labels, per_angle=False, device=args.device)
        metrics["validation"] = {key: validation[key] for key in ("upright_accuracy", "rotated_accuracy")}
        logger.info(
            "validation: upright %.2f%%, rotated %.2f%%",
            100 * validation["upright_accuracy"],
            100 * validation["rotated_accuracy"],
        )
    if not args.skip_test:
        test_images, test_labels = load_mnist(train=False, root=args.data_dir)
        test_images, test_labels = test_images[: args.eval_limit], test_labels[: args.eval_limit]
        test = evaluate(model, test_images, test_labels, per_angle=False, device=args.device)
        metrics.update({key: value for key, value in test.items() if key != "rotated_confusion_matrix"})
        if isinstance(model, GroupEquivariantCNN) and model.config.head == "joint":
            orientation = evaluate_orientation(model, test_images, test_labels, device=args.device)
            metrics["orientation"] = {k: v for k, v in orientation.items() if not isinstance(v, dict)}
        logger.info(
            "test: upright %.2f%%, rotated %.2f%%", 100 * test["upright_accuracy"], 100 * test["rotated_accuracy"]
        )
    card = {
        "training": {
            **{key: value for key, value in vars(args).items() if key not in ("out_dir", "data_dir")},
            "train_digits": len(images),
            "wall_time_s": round(wall_time, 1),
            "device_name": torch.cuda.get_device_name()
            if args.device.startswith("cuda")
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "history": history,
        },
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
    }
    card_path = save_checkpoint(model.cpu(), args.out_dir, name, card)
    logger.info("wrote %s", card_path)
    return card_path


if __name__ == "__main__":
    main()
