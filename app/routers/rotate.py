"""POST /rotate: the uploaded picture itself, transformed, as PNG."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.dependencies import (
    DecoderDep,
    MetricsDep,
    SettingsDep,
    TorchWorkerDep,
    TransformDep,
    UploadDep,
    require_multipart,
)
from app.guard.disconnect import unless_disconnected
from app.guard.problems import problem_responses
from app.pictures.decoding import display_pixels
from app.pictures.imaging import encode_png
from app.pictures.transforms import Transform, transform_picture
from app.pictures.uploads import read_upload

router = APIRouter(tags=["rotate"], dependencies=[Depends(require_multipart)])

_PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The transformed picture as PNG. Headers: X-Rotation-Degrees, X-Reflection.",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/rotate",
    summary="Rotate (or mirror) the uploaded picture",
    description=(
        "Decodes the upload (first frame, EXIF orientation applied) and returns it transformed by a group "
        "element (`group` + `element`) or an angle, as PNG, in colour. Quarter turns and mirrors are exact; a "
        "quarter turn of a non-square picture swaps width and height. Other angles interpolate bilinearly about "
        "the centre and keep the size; the corners they uncover take the picture's background colour (the median "
        "of its border), or become transparent if the picture has transparency. Pictures are limited to "
        "GCNN_MAX_ROTATE_PIXELS pixels. No preprocessing: this is the picture, not the model input."
    ),
    response_class=Response,
    responses={**_PNG_RESPONSE, **problem_responses(400, 413, 415, 422, 500, 503)},
)
async def rotate_picture(
    request: Request,
    file: UploadDep,
    transform: TransformDep,
    settings: SettingsDep,
    worker: TorchWorkerDep,
    decoder: DecoderDep,
    metrics: MetricsDep,
) -> Response:
    upload = await read_upload(file, settings.max_upload_bytes)
    limit = min(settings.max_pixels, settings.max_rotate_pixels)

    async def work() -> bytes:
        pixels = await decoder.run(display_pixels, upload.data, limit)  # budgeted, in a decode process
        turned = await worker.run(transform_picture, pixels, transform)
        return await asyncio.to_thread(encode_png, turned)  # zlib releases the GIL: off the loop and the worker

    png = await unless_disconnected(request, work())
    metrics.count_images(request)
    return Response(png, media_type="image/png", headers=_headers(upload.filename, transform))


def _headers(filename: str | None, transform: Transform) -> dict[str, str]:
    stem = (filename or "image").rsplit(".", 1)[0] or "image"
    name = f"{stem}-rotated.png"
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return {
        # RFC 6266: an ASCII fallback, and the exact (possibly unicode) name percent-encoded
        "Content-Disposition": f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}",
        "X-Rotation-Degrees": f"{transform.degrees:g}",
        "X-Reflection": "true" if transform.reflection else "false",
    }
