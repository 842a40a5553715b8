"""POST /classify and /classify/batch: every loaded model's answer for uploaded digits."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.answering.pipeline import InputSpec, classify_uploads, predictions, to_png_base64, transform_info
from app.dependencies import (
    DecoderDep,
    EngineDep,
    MetricsDep,
    OrientationPriorDep,
    PreprocessDep,
    RequestIdDep,
    ReturnImageDep,
    SettingsDep,
    TransformDep,
    UploadDep,
    UploadsDep,
    require_multipart,
)
from app.errors import TooManyFilesError
from app.guard.disconnect import unless_disconnected
from app.guard.problems import problem_responses
from app.pictures.uploads import read_upload, read_uploads
from app.schemas import BatchItem, ClassifyBatchResponse, ClassifyResponse, json_response

router = APIRouter(tags=["classify"], dependencies=[Depends(require_multipart)])

_ERRORS = problem_responses(400, 413, 415, 422, 500, 503)


@router.post(
    "/classify",
    summary="Classify one digit with every model",
    description=(
        "Upload one image as multipart field `file`. The image is decoded (first frame, EXIF orientation), "
        "preprocessed to a 28x28 MNIST-like digit (`preprocess`), optionally transformed (a group element "
        "or an angle, applied to the 28x28 image about its centre), and classified by every loaded model."
    ),
    responses=_ERRORS,
    response_model=ClassifyResponse,
)
async def classify(
    request: Request,
    file: UploadDep,
    transform: TransformDep,
    preprocess: PreprocessDep,
    prior: OrientationPriorDep,
    return_image: ReturnImageDep,
    settings: SettingsDep,
    engine: EngineDep,
    decoder: DecoderDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
) -> Response:
    upload = await read_upload(file, settings.max_upload_bytes)
    work = classify_uploads([upload], engine, decoder, InputSpec(settings.max_pixels, preprocess, transform))
    batch, outputs = await unless_disconnected(request, work)
    metrics.count_images(request)
    return json_response(
        ClassifyResponse(
            request_id=request_id,
            filename=upload.filename,
            preprocess=preprocess,
            orientation_prior=prior,
            transform=transform_info(transform),
            predictions=predictions(outputs, prior, batch if return_image else None, transform.degrees)[0],
            image=to_png_base64(batch[0, 0]) if return_image else None,
        )
    )


@router.post(
    "/classify/batch",
    summary="Classify several digits in one request",
    description=(
        "Upload up to GCNN_MAX_BATCH images, each as a multipart field `files`. Every image gets the same "
        "preprocessing and transformation; the models run on all of them as one batch. If any file is "
        "unusable, the whole request fails with a problem naming that file."
    ),
    responses=_ERRORS,
    response_model=ClassifyBatchResponse,
)
async def classify_batch(
    request: Request,
    files: UploadsDep,
    transform: TransformDep,
    preprocess: PreprocessDep,
    prior: OrientationPriorDep,
    return_image: ReturnImageDep,
    settings: SettingsDep,
    engine: EngineDep,
    decoder: DecoderDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
) -> Response:
    if len(files) > settings.max_batch:
        raise TooManyFilesError(f"{len(files)} files in one batch; the limit is {settings.max_batch}")
    uploads = await read_uploads(files, settings.max_upload_bytes)
    work = classify_uploads(uploads, engine, decoder, InputSpec(settings.max_pixels, preprocess, transform))
    batch, outputs = await unless_disconnected(request, work)
    metrics.count_images(request, len(uploads))
    items = [
        BatchItem(
            index=index,
            filename=upload.filename,
            predictions=rows,
            image=to_png_base64(batch[index, 0]) if return_image else None,
        )
        for index, (upload, rows) in enumerate(
            zip(uploads, predictions(outputs, prior, batch if return_image else None, transform.degrees), strict=True)
        )
    ]
    return json_response(
        ClassifyBatchResponse(
            request_id=request_id,
            preprocess=preprocess,
            orientation_prior=prior,
            transform=transform_info(transform),
            count=len(items),
            items=items,
        )
    )
