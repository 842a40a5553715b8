"""The steps every classifying endpoint shares: upload -> 28x28 input -> batch -> response rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from app.errors import InputError
from app.imaging import decode_image, png_base64, to_grey
from app.inference import ModelOutput
from app.preprocessing import PreprocessMode, to_model_input
from app.schemas import ModelPrediction, TopPrediction, TransformInfo
from app.transforms import Transform
from app.uploads import Upload

__all__ = ["model_input", "predictions", "prepare_batch", "to_png_base64", "transform_info"]

# A JPEG may be decoded at 1/2, 1/4 or 1/8 scale if its short side stays above this:
# enough for a digit that fills a fraction of a photo to keep ~100 px before it shrinks to 20.
DECODE_MIN_SIDE = 512


def model_input(data: bytes, max_pixels: int, mode: PreprocessMode) -> np.ndarray:
    """Upload bytes -> the upright ``(28, 28)`` float32 input (see :mod:`app.preprocessing`)."""
    image = decode_image(data, max_pixels, min_side=DECODE_MIN_SIDE)
    return to_model_input(to_grey(image), mode)


def prepare_batch(
    uploads: Sequence[Upload], max_pixels: int, mode: PreprocessMode, transform: Transform
) -> torch.Tensor:
    """The transformed ``(B, 1, 28, 28)`` batch; an input error names the file it is about."""
    images = []
    for index, upload in enumerate(uploads):
        try:
            images.append(model_input(upload.data, max_pixels, mode))
        except InputError as error:
            if len(uploads) == 1:
                raise
            raise type(error)(f"file {index} ({upload.filename or 'unnamed'}): {error}") from error
    return transform.apply(torch.from_numpy(np.stack(images))[:, None])  # (B, 1, 28, 28)


def predictions(outputs: Sequence[ModelOutput]) -> list[list[ModelPrediction]]:
    """Per image, every model's prediction (``result[b][m]``)."""
    per_model = [(output, output.probabilities.tolist()) for output in outputs]
    batch = len(per_model[0][1])
    return [[_prediction(output, rows[b]) for output, rows in per_model] for b in range(batch)]


def _prediction(output: ModelOutput, probabilities: list[float]) -> ModelPrediction:
    ranked = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)
    rounded = [round(p, 6) for p in probabilities]
    return ModelPrediction(
        model=output.name,
        digit=ranked[0],
        confidence=rounded[ranked[0]],
        probabilities=rounded,
        top3=[TopPrediction(digit=d, probability=rounded[d]) for d in ranked[:3]],
        inference_ms=round(output.seconds * 1000, 3),
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
