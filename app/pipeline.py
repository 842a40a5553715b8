"""The steps every classifying endpoint shares: upload -> 28x28 input -> batch -> response rows.

Decoding is split by cost. An upload that is small in bytes *and* in declared
pixels (at most :data:`INLINE_BYTES` and :data:`INLINE_PIXELS`: a drawn or
MNIST-sized digit) costs microseconds and is decoded with the batch on the
torch worker; anything larger goes to a decode process with a time and memory
budget first (:mod:`app.sandbox`), so no upload can hold the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from app.answers import ModelOutput, predictions, to_png_base64, with_prior
from app.decoding import model_input
from app.errors import InputError
from app.imaging import open_image
from app.inference import InferenceEngine
from app.preprocessing import PreprocessMode
from app.sandbox import DecodePool
from app.schemas import TransformInfo
from app.transforms import Transform
from app.uploads import Upload

# predictions, to_png_base64 and with_prior are app.answers': listed here too for the routers that import them from here
__all__ = [
    "classify_uploads",
    "decode_uploads",
    "predictions",
    "prepare_batch",
    "to_png_base64",
    "transform_info",
    "with_prior",
]

INLINE_BYTES = 16 * 1024
INLINE_PIXELS = 256 * 256


def is_cheap(data: bytes, max_pixels: int) -> bool:
    """Whether an upload is small enough to decode inline (its header parse is bounded by its size)."""
    if len(data) > INLINE_BYTES:
        return False
    try:
        width, height = open_image(data, max_pixels).size
    except InputError:
        return True  # the inline decode raises the same error at once
    return width * height <= INLINE_PIXELS


async def decode_uploads(
    uploads: Sequence[Upload], pool: DecodePool, max_pixels: int, mode: PreprocessMode
) -> list[np.ndarray | Upload]:
    """Every upload's ``(28, 28)`` input from a decode process, except cheap ones (left for
    :func:`prepare_batch`); all of them decode, then the first error (by file) is raised."""

    async def decode(upload: Upload) -> np.ndarray | Upload:
        return (
            upload if is_cheap(upload.data, max_pixels) else await pool.run(model_input, upload.data, max_pixels, mode)
        )

    results = await asyncio.gather(*(decode(upload) for upload in uploads), return_exceptions=True)
    for index, result in enumerate(results):
        if isinstance(result, InputError):
            raise _about_file(result, index, uploads)
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def prepare_batch(
    inputs: Sequence[np.ndarray | Upload], max_pixels: int, mode: PreprocessMode, transform: Transform
) -> torch.Tensor:
    """The transformed ``(B, 1, 28, 28)`` batch of decoded inputs and cheap uploads (decoded here)."""
    images = []
    for index, item in enumerate(inputs):
        try:
            images.append(model_input(item.data, max_pixels, mode) if isinstance(item, Upload) else item)
        except InputError as error:
            raise _about_file(error, index, inputs) from error
    return transform.apply(torch.from_numpy(np.stack(images))[:, None])  # (B, 1, 28, 28)


async def classify_uploads(
    uploads: Sequence[Upload],
    engine: InferenceEngine,
    decoder: DecodePool,
    max_pixels: int,
    mode: PreprocessMode,
    transform: Transform,
) -> tuple[torch.Tensor, list[ModelOutput]]:
    """Decode (large uploads in a decode process), then batch and run every model on the torch worker."""
    inputs = await decode_uploads(uploads, decoder, max_pixels, mode)
    return await engine.classify(prepare_batch, inputs, max_pixels, mode, transform)


def _about_file(error: InputError, index: int, items: Sequence[object]) -> InputError:
    """In a batch, the error names the file it is about (a single upload's error stands as it is)."""
    if len(items) == 1:
        return error
    item = items[index]
    name = item.filename if isinstance(item, Upload) else None
    return type(error)(f"file {index} ({name or 'unnamed'}): {error}")


def transform_info(transform: Transform) -> TransformInfo:
    kind: Literal["identity", "element", "angle"] = (
        "element" if transform.group is not None else ("identity" if transform.is_identity else "angle")
    )
    return TransformInfo(
        kind=kind,
        group=transform.group.name if transform.group is not None else None,
        element=transform.element,
        degrees=transform.degrees,
        reflection=transform.reflection,
        exact=transform.is_exact,
    )
