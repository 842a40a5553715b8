"""GET /models and /groups/{name}: what the service runs, and the symmetry groups it speaks of."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.answering.inference import LoadedModel
from app.dependencies import EngineDep
from app.errors import InvalidTransformError
from app.guard.problems import UNKNOWN_GROUP, ProblemException, problem_responses
from app.pictures.transforms import parse_group
from app.schemas import GroupElementInfo, GroupResponse, ModelInfo, ModelsResponse
from model.groups import Group

router = APIRouter(tags=["catalog"])

_MATRIX_DIGITS = 12  # cos(90 deg) is 6e-17 in floating point; show it as 0


@router.get(
    "/models",
    summary="The loaded models and their checkpoint cards",
    responses=problem_responses(500, 503),
)
def list_models(engine: EngineDep) -> ModelsResponse:
    return ModelsResponse(models=[_model_info(model) for model in engine.models])


def _model_info(model: LoadedModel) -> ModelInfo:
    card = model.card
    return ModelInfo(
        name=model.name,
        architecture=model.architecture,
        group=model.group,
        orientation=model.has_orientation,
        lean=model.lean if model.has_orientation else None,
        parameters=card.get("parameters"),
        sha256=card["sha256"],
        weights_file=card["weights_file"],
        config=card["config"],
        metrics=card.get("metrics", {}),
        training=card.get("training", {}),
        torch_version=card.get("torch_version"),
        created=card.get("created"),
    )


@router.get(
    "/groups/{name}",
    summary="The elements of a symmetry group",
    description=(
        "Every element of C_N (N rotations) or D_N (N rotations and N reflections), N = 1..999, in the "
        "project's convention: index i = s*N + k stands for r^k m^s, r a counter-clockwise rotation by "
        "360/N degrees, m the left-right mirror (applied first). Matrices act on plane points (x right, y up) "
        "and are rounded to 12 decimals."
    ),
    responses=problem_responses(404, 422, 500),
)
def describe_group(
    name: Annotated[str, Path(max_length=16, description="`C<N>` or `D<N>`, e.g. C4, C8, D4.", examples=["D4"])],
) -> GroupResponse:
    try:
        group = parse_group(name)
    except InvalidTransformError as error:
        raise ProblemException(UNKNOWN_GROUP, str(error)) from error
    return GroupResponse(
        name=group.name,
        order=group.order,
        rotations=group.rotations,
        reflections=group.reflections,
        elements=[_element_info(group, g) for g in group.elements()],
    )


def _element_info(group: Group, g: int) -> GroupElementInfo:
    matrix = group.matrix(g).tolist()
    return GroupElementInfo(
        index=g,
        rotation=group.split(g)[0],
        degrees=group.degrees(g),
        reflection=group.is_reflection(g),
        exact=group.is_exact(g),
        matrix=[[round(value, _MATRIX_DIGITS) + 0.0 for value in row] for row in matrix],  # + 0.0: no -0.0
    )
