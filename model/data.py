"""Training data held in memory as tensors: MNIST, and the synthetic digits file.

MNIST comes through ``torchvision.datasets.MNIST``. The root folder comes from
``--data-dir`` or the ``GCNN_DATA_DIR`` environment variable (default ``data/``).
torchvision downloads the files there when they are missing (``download=True``),
so a user with internet needs nothing else; offline, point ``GCNN_DATA_DIR`` at a
folder that holds ``MNIST/raw/``.

The synthetic digits are one safetensors file made by ``python -m bench.training_set``
(font digits captured as photos and scans, already preprocessed by the service);
:func:`load_synthetic` only reads it, so ``model`` needs neither the generator nor
the service.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

__all__ = [
    "DEFAULT_DATA_DIR",
    "DatasetUnavailableError",
    "SyntheticDigits",
    "data_dir",
    "load_mnist",
    "load_synthetic",
]

DEFAULT_DATA_DIR = Path("data")
logger = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """MNIST is not on disk and could not be downloaded."""


def data_dir(override: str | Path | None = None) -> Path:
    """The MNIST root: an explicit override, else ``$GCNN_DATA_DIR``, else ``data/``."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get("GCNN_DATA_DIR", DEFAULT_DATA_DIR))


def load_mnist(
    train: bool, root: str | Path | None = None, *, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` float32 in [0, 1] (ink is bright) and labels ``(N,)`` int64."""
    from torchvision.datasets import MNIST  # training-time dependency only

    folder = data_dir(root)
    try:
        dataset = MNIST(root=str(folder), train=train, download=download)
    except (RuntimeError, OSError) as error:
        raise DatasetUnavailableError(
            f"MNIST is not under {folder.resolve()}/MNIST/raw and could not be downloaded ({error}). "
            "Connect to the internet or set GCNN_DATA_DIR / --data-dir to a folder that holds MNIST/raw/."
        ) from error
    images = dataset.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    logger.info("loaded MNIST %s: %d digits from %s", "train" if train else "test", len(images), folder)
    return images, dataset.targets.long()


@dataclass(frozen=True)
class SyntheticDigits:
    """The synthetic digits file: images as MNIST's, labels, and what the file says about itself."""

    images: torch.Tensor  # (N, 1, 28, 28) float32 in [0, 1], ink bright
    labels: torch.Tensor  # (N,) int64
    sha256: str  # of the file
    metadata: dict[str, Any]  # the generator's metadata, JSON values parsed

    def describe(self, path: Path) -> dict[str, Any]:
        """What a model card records about this file."""
        return {
            "path": str(path),
            "sha256": self.sha256,
            "seed": self.metadata.get("seed"),
            "count": len(self.labels),
            "generator": self.metadata.get("generator"),
            "fonts": [font["file"] for font in self.metadata.get("fonts", [])],
            "conditions": self.metadata.get("conditions"),
            "hollow_share": self.metadata.get("hollow_share", 0.0),  # glyphs drawn as outlines (older sets: none)
        }


def load_synthetic(path: str | Path) -> SyntheticDigits:
    """Read a synthetic digits file (``images`` ``(N, 28, 28)`` uint8, ``labels`` ``(N,)`` int64 in 0-9).

    Raises:
        DatasetUnavailableError: the file is missing, not safetensors, or does not hold that.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetUnavailableError(
            f"synthetic digits file {path} does not exist; make it with python -m bench.training_set --out {path}"
        )
    try:
        with safe_open(str(path), framework="pt") as stream:
            raw_metadata = stream.metadata() or {}
            images, labels = stream.get_tensor("images"), stream.get_tensor("labels")
    except (SafetensorError, OSError, KeyError) as error:
        raise DatasetUnavailableError(f"{path} is not a readable safetensors file: {error}") from error
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DatasetUnavailableError(
            f"{path}: images must be (N, 28, 28) uint8, got {tuple(images.shape)} {images.dtype}"
        )
    if labels.dtype != torch.int64 or labels.shape != (len(images),) or not bool(((labels >= 0) & (labels <= 9)).all()):
        raise DatasetUnavailableError(f"{path}: labels must be ({len(images)},) int64 digits 0-9")
    with path.open("rb") as stream:
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    metadata = {key: _parsed(value) for key, value in raw_metadata.items()}
    logger.info("loaded %d synthetic digits from %s (seed %s)", len(images), path, metadata.get("seed"))
    return SyntheticDigits(images.unsqueeze(1).float().div_(255.0), labels, sha256, metadata)


def _parsed(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
