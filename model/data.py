"""MNIST through ``torchvision.datasets.MNIST``, held in memory as tensors.

The root folder comes from ``--data-dir`` or the ``GCNN_DATA_DIR`` environment
variable (default ``data/``). torchvision downloads the files there when they
are missing (``download=True``), so a user with internet needs nothing else;
offline, point ``GCNN_DATA_DIR`` at a folder that holds ``MNIST/raw/``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

__all__ = ["DEFAULT_DATA_DIR", "DatasetUnavailableError", "data_dir", "load_mnist"]

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
