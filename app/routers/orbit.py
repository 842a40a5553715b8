"""POST /orbit: the equivariance demo, a digit under every element of a group, through every model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.answering.pipeline import InputSpec, classify_uploads, predictions, to_png_base64
from app.dependencies import (
    DecoderDep,
    EngineDep,
    MetricsDep,
    OrientationPriorDep,
    PreprocessDep,
    RequestIdDep,
    ReturnImageDep,
    SettingsDep,
    UploadDep,
    require_multipart,
)
from app.errors import InvalidTransformError
from app.guard.disconnect import unless_disconnected
from app.guard.problems import problem_responses
from app.pictures.transforms import parse_group
from app.pictures.uploads import read_upload
from app.schemas import ModelPrediction, OrbitPrediction, OrbitResponse, OrbitRow, OrbitSummary, json_response
from app.settings import Settings
from model.groups import Group

router = APIRouter(tags=["equivariance"], dependencies=[Depends(require_multipart)])


@router.post(
    "/orbit",
    summary="Classify a digit under every element of a group",
    description=(
        "The upload is preprocessed to 28x28 as in /classify, then transformed by every element of `group` "
        "and classified by every model, all elements in one batch. Each row is one element; the summary says, "
        "per model, how many distinct digits it answered over the orbit and what fraction of elements agree "
        "with the upright (identity) prediction. A G-CNN built for the group answers the same for all of its "
        "elements; the plain CNN does not."
    ),
    responses=problem_responses(400, 413, 415, 422, 500, 503),
    response_model=OrbitResponse,
)
async def orbit(
    request: Request,
    file: UploadDep,
    preprocess: PreprocessDep,
    prior: OrientationPriorDep,
    return_image: ReturnImageDep,
    settings: SettingsDep,
    engine: EngineDep,
    decoder: DecoderDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    group: Annotated[
        str,
        Query(
            max_length=16,
            description="The group whose elements transform the digit: `C<N>` or `D<N>` (e.g. `D4`); its order "
            f"may be at most GCNN_MAX_ORBIT (default {Settings.model_fields['max_orbit'].default}).",
        ),
    ] = "C8",
) -> Response:
    symmetry = parse_group(group)
    if symmetry.order > settings.max_orbit:
        raise InvalidTransformError(
            f"{symmetry.name} has {symmetry.order} elements; /orbit allows at most {settings.max_orbit}"
        )
    upload = await read_upload(file, settings.max_upload_bytes)
    spec = InputSpec(settings.max_pixels, preprocess, orbit=symmetry)  # one upload: row g is element g
    batch, outputs = await unless_disconnected(request, classify_uploads([upload], engine, decoder, spec))
    per_element = predictions(outputs, prior, turned=[symmetry.degrees(g) for g in symmetry.elements()])
    metrics.count_images(request)
    return json_response(
        OrbitResponse(
            request_id=request_id,
            filename=upload.filename,
            group=symmetry.name,
            order=symmetry.order,
            preprocess=preprocess,
            orientation_prior=prior,
            rows=_rows(symmetry, per_element),
            summary=[_summary(model, per_element) for model in range(len(outputs))],
            image=to_png_base64(batch[0, 0]) if return_image else None,  # element 0 is the identity
        )
    )


def _rows(group: Group, per_element: list[list[ModelPrediction]]) -> list[OrbitRow]:
    return [
        OrbitRow(
            element=g,
            degrees=group.degrees(g),
            reflection=group.is_reflection(g),
            predictions=[
                OrbitPrediction(
                    model=prediction.model,
                    digit=prediction.digit,
                    confidence=prediction.confidence,
                    orientation_degrees=prediction.orientation.degrees if prediction.orientation else None,
                    ambiguous=prediction.ambiguous,
                )
                for prediction in per_element[g]
            ],
        )
        for g in group.elements()
    ]


def _summary(model: int, per_element: list[list[ModelPrediction]]) -> OrbitSummary:
    digits = [row[model].digit for row in per_element]
    upright = digits[0]
    return OrbitSummary(
        model=per_element[0][model].model,
        upright_digit=upright,
        distinct_predictions=len(set(digits)),
        agreement=round(sum(digit == upright for digit in digits) / len(digits), 6),
    )
