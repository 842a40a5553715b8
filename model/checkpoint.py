"""Checkpoints: weights as safetensors (never pickle) plus a JSON card.

``weights/<name>.safetensors`` holds the state dict; ``weights/<name>.json``
holds everything needed to rebuild and trust it: architecture and config,
parameter count, the SHA-256 of the weights file, training arguments, metrics.
Loading verifies the checksum before it reads a single tensor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from model.networks import CNNConfig
from model.registry import architecture_of, build_model

__all__ = ["CheckpointError", "load_checkpoint", "read_card", "save_checkpoint", "sha256_of"]

MAX_CARD_BYTES = 1 << 20  # a card is a few kB; refuse anything absurd before parsing


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated or does not match its card."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(model: nn.Module, directory: Path, name: str, card: dict[str, Any]) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json``; returns the JSON path."""
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{name}.safetensors"
    state = {key: value.detach().contiguous().cpu() for key, value in model.state_dict().items()}
    # written by Python, not by safetensors' save_file (which makes the file 0600): readable as the user's umask says,
    # like the card beside it, so a service run by another user can load a checkpoint copied into its weights folder
    weights_path.write_bytes(save(state))
    full_card = {
        "name": name,
        "architecture": architecture_of(model),
        "config": cast(CNNConfig, model.config).to_dict(),
        "parameters": count_parameters(model),
        "weights_file": weights_path.name,
        "sha256": sha256_of(weights_path),
        **card,
    }
    card_path = directory / f"{name}.json"
    card_path.write_text(json.dumps(full_card, indent=2) + "\n")
    return card_path


def read_card(card_path: Path) -> dict[str, Any]:
    """The parsed JSON card, with the fields every loader relies on checked."""
    if not card_path.is_file():
        raise CheckpointError(f"checkpoint card {card_path} does not exist")
    if card_path.stat().st_size > MAX_CARD_BYTES:
        raise CheckpointError(f"checkpoint card {card_path} is larger than {MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(card_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint card {card_path} is not valid JSON: {error}") from error
    missing = {"name", "architecture", "config", "weights_file", "sha256"} - set(card)
    if missing:
        raise CheckpointError(f"checkpoint card {card_path} lacks {sorted(missing)}")
    return card


def load_checkpoint(card_path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a JSON card, verify its weights' SHA-256, load them; eval mode."""
    card_path = Path(card_path)
    card = read_card(card_path)
    weights_path = card_path.parent / Path(card["weights_file"]).name  # never follow paths out of the folder
    if not weights_path.is_file():
        raise CheckpointError(f"weights file {weights_path} does not exist")
    actual = sha256_of(weights_path)
    if actual != card["sha256"]:
        raise CheckpointError(f"SHA-256 mismatch for {weights_path}: card says {card['sha256']}, file is {actual}")
    try:
        model = build_model(card["architecture"], card["config"])
        state = load_file(str(weights_path), device=str(device))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"cannot load {weights_path}: {error}") from error
    return model.to(device).eval(), card
