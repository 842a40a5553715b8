"""The steps every classifying endpoint shares: uploads -> pictures -> the engine -> the models' outputs.

Decoding is split by cost, in one place (:func:`decode_upload`). An upload that
is small in bytes *and* in declared pixels (at most :data:`INLINE_BYTES` and
:data:`INLINE_PIXELS`: a drawn or MNIST-sized digit) costs microseconds: its
header is opened here, once, and its pixels are decoded with the batch on the
torch worker (:meth:`app.answering.inputs.ModelInputs.batch`); anything larger goes to a
decode process with a time and memory budget first (:mod:`app.pictures.sandbox`), so no
upload can hold the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import torch

from app.answering.answers import ModelOutput, predictions, to_png_base64, with_prior
from app.answering.inference import InferenceEngine
from app.answering.inputs import InputSpec, ModelInputs, Picture, about_file
from app.errors import InputError
from app.pictures.decoding import model_input
from app.pictures.imaging import open_image
from app.pictures.sandbox import DecodePool
from app.pictures.transforms import Transform
from app.pictures.uploads import Upload
from app.schemas import TransformInfo

# predictions, to_png_base64 and with_prior are app.answering.answers': listed here too for the routers that import
# them from here
__all__ = [
    "InputSpec",
    "classify_uploads",
    "decode_upload",
    "decode_uploads",
    "predictions",
    "to_png_base64",
    "transform_info",
    "with_prior",
]

INLINE_BYTES = 16 * 1024
INLINE_PIXELS = 256 * 256


async def decode_upload(upload: Upload, pool: DecodePool, spec: InputSpec) -> Picture:
    """An upload's picture: a small one's opened header (decoded later, on the torch worker), or the
    ``(28, 28)`` input a decode process made of a larger one.

    Raises:
        InputError: the header is refused (a small upload), or the decode process's error.
    """
    if len(upload.data) <= INLINE_BYTES:  # its header parse is bounded by its size
        header = open_image(upload.data, spec.max_pixels)
        width, height = header.size
        if width * height <= INLINE_PIXELS:
            return header
    return await pool.run(model_input, upload.data, spec.max_pixels, spec.mode)


async def decode_uploads(uploads: Sequence[Upload], pool: DecodePool, spec: InputSpec) -> ModelInputs:
    """Every upload's picture (:func:`decode_upload`); all of them decode, then the first error (by file) is raised."""
    results = await asyncio.gather(*(decode_upload(upload, pool, spec) for upload in uploads), return_exceptions=True)
    filenames = [upload.filename for upload in uploads]
    for index, result in enumerate(results):
        if isinstance(result, InputError):
            raise about_file(result, index, filenames)
        if isinstance(result, BaseException):
            raise result
    return ModelInputs(results, filenames, spec)  # type: ignore[arg-type]


async def classify_uploads(
    uploads: Sequence[Upload], engine: InferenceEngine, decoder: DecodePool, spec: InputSpec
) -> tuple[torch.Tensor, list[ModelOutput]]:
    """Decode (large uploads in a decode process), then batch and run every model on the torch worker:
    the batch the models saw and their outputs."""
    return await engine.classify(await decode_uploads(uploads, decoder, spec))


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
