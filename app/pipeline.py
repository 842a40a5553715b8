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
from typing import Any, Literal

import numpy as np
import torch

from app.decoding import model_input
from app.errors import InputError
from app.imaging import open_image, png_base64
from app.inference import InferenceEngine, ModelOutput
from app.preprocessing import PreprocessMode
from app.sandbox import DecodePool
from app.schemas import (
    ModelPrediction,
    OrientationInfo,
    OrientationPrior,
    ReadingInfo,
    TopPrediction,
    TransformInfo,
)
from app.transforms import Transform
from app.uploads import Upload
from model.orientation import Pose, angles, upright_prior
from model.rotation import rotate

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
            upload
            if is_cheap(upload.data, max_pixels)
            else await pool.run("model_input", upload.data, max_pixels, mode)
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


def with_prior(output: ModelOutput, prior: OrientationPrior, turned: Sequence[float] | float = 0.0) -> Pose | None:
    """A joint-head model's poses, weighed by the requested orientation prior; None for the others.

    The ``upright`` prior is about the upload: when the service turned it (a transform, or an
    ``/orbit`` element) by ``turned`` degrees (one angle, or one per input), the model input is
    expected near that angle, and the prior is centred there.
    """
    if output.pose is None or prior is OrientationPrior.NONE:
        return output.pose
    centre = torch.as_tensor(turned, dtype=torch.float64).reshape(-1, 1)  # (1 or B, 1)
    return output.pose.with_prior(upright_prior(angles()[None, :] - centre))


def predictions(
    outputs: Sequence[ModelOutput],
    prior: OrientationPrior = OrientationPrior.NONE,
    batch: torch.Tensor | None = None,
    turned: Sequence[float] | float = 0.0,
) -> list[list[ModelPrediction]]:
    """Per image, every model's prediction (``result[b][m]``); ``turned``: the degrees by which the
    service turned the upload(s) (see :func:`with_prior`). Given the ``(B, 1, 28, 28)`` ``batch``
    (``return_image=true``), a joint-head model's predictions carry the input turned upright too."""
    columns = [_column(output, with_prior(output, prior, turned), batch) for output in outputs]
    return [list(row) for row in zip(*columns, strict=True)]


def _column(output: ModelOutput, pose: Pose | None, batch: torch.Tensor | None) -> list[ModelPrediction]:
    """One model's predictions for the whole batch."""
    if pose is None:
        return [_prediction(output, row) for row in output.probabilities.tolist()]
    found, readings = pose.orientation(), pose.top_readings(3)
    ambiguous = readings.ambiguous().tolist()
    column = []
    for b, row in enumerate(pose.digit_probabilities.tolist()):
        degrees = float(found.degrees[b])
        extra = {
            "orientation": OrientationInfo(degrees=_degrees(degrees), confidence=round(float(found.confidence[b]), 6)),
            "readings": [
                ReadingInfo(digit=int(d), degrees=_degrees(float(a)), probability=round(float(p), 6))
                for d, a, p in zip(readings.digits[b], readings.degrees[b], readings.probabilities[b], strict=True)
            ],
            "ambiguous": ambiguous[b],
            "upright_image": to_png_base64(rotate(batch[b, 0], -degrees)) if batch is not None else None,
        }
        column.append(_prediction(output, row, **extra))
    return column


def _degrees(value: float) -> float:
    """An angle for the API: two decimals, in [0, 360)."""
    return round(value, 2) % 360.0


def _prediction(output: ModelOutput, probabilities: list[float], **orientation: Any) -> ModelPrediction:
    ranked = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)
    rounded = [round(p, 6) for p in probabilities]
    return ModelPrediction(
        model=output.name,
        digit=ranked[0],
        confidence=rounded[ranked[0]],
        probabilities=rounded,
        top3=[TopPrediction(digit=d, probability=rounded[d]) for d in ranked[:3]],
        inference_ms=round(output.seconds * 1000, 3),
        **orientation,
    )


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


def to_png_base64(image: torch.Tensor) -> str:
    """A ``(28, 28)`` float image in [0, 1] as a base64 grey PNG."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return png_base64(pixels)
