"""Response bodies of the API (errors: :class:`app.guard.problems.Problem`)."""

from __future__ import annotations

import enum
from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app import schema_examples as examples
from app.pictures.preprocessing import PreprocessMode
from model.orientation import AMBIGUITY_SHARE

__all__ = [
    "ClassifyBatchResponse",
    "ClassifyResponse",
    "GroupElementInfo",
    "GroupResponse",
    "HealthResponse",
    "ModelInfo",
    "ModelPrediction",
    "ModelsResponse",
    "OrbitResponse",
    "OrbitRow",
    "OrbitSummary",
    "OrientationInfo",
    "OrientationPrior",
    "ReadingInfo",
    "ReadyResponse",
    "TopPrediction",
    "TransformInfo",
    "json_response",
]


def json_response(body: BaseModel) -> Response:
    """``body`` as JSON, serialised once by pydantic: a route that builds its answer from these schemas
    (and declares it as ``response_model`` for the docs) need not have FastAPI validate it again."""
    return Response(body.model_dump_json(), media_type="application/json")


class OrientationPrior(enum.StrEnum):
    """What the client knows about how its uploads are turned (the ``orientation_prior`` parameter)."""

    NONE = "none"
    UPRIGHT = "upright"


class OrientationInfo(BaseModel):
    """Which way a G-CNN with a joint head thinks the input is turned."""

    degrees: float = Field(
        ge=0, lt=360, description="Estimated counter-clockwise rotation of the input relative to upright, degrees."
    )
    confidence: float = Field(
        ge=0, le=1, description="Probability that the input is turned within half a group step of `degrees`."
    )


class ReadingInfo(BaseModel):
    """One joint hypothesis: this digit, turned by this angle."""

    digit: int = Field(ge=0, le=9)
    degrees: float = Field(ge=0, lt=360, description="How far the input is turned if it is this digit.")
    probability: float = Field(ge=0, le=1, description="Probability of the digit with the angles around this one.")


class TopPrediction(BaseModel):
    digit: int = Field(ge=0, le=9)
    probability: float = Field(ge=0, le=1)


class ModelPrediction(BaseModel):
    """One model's answer for one image."""

    model: str = Field(description="Checkpoint name, as in GET /models.")
    digit: int = Field(ge=0, le=9, description="The predicted digit (the most probable class).")
    confidence: float = Field(ge=0, le=1, description="The predicted digit's probability.")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="Softmax over digits 0..9.")
    top3: list[TopPrediction] = Field(min_length=3, max_length=3, description="The three most probable digits.")
    inference_ms: float = Field(
        ge=0, description="This model's forward pass in milliseconds (for a batch: the whole batch's pass)."
    )
    orientation: OrientationInfo | None = Field(
        default=None, description="How the input is turned (G-CNNs with a joint head; null for the others)."
    )
    readings: list[ReadingInfo] = Field(
        default_factory=list,
        max_length=3,
        description="Up to three (digit, angle) readings: first the answered digit's most probable one "
        "(so readings[0].digit == digit), then the others by probability; [] if none.",
    )
    ambiguous: bool = Field(
        default=False,
        description="Some reading of another digit, wherever it ranks, holds at least "
        f"{AMBIGUITY_SHARE:g} of the first reading's probability: e.g. a 6, or a 9 turned by half a turn.",
    )
    upright_image: str | None = Field(
        default=None,
        description="With return_image=true: the 28x28 input turned back by `orientation.degrees`, base64 PNG.",
    )


class TransformInfo(BaseModel):
    """The transformation applied to the 28x28 image before classification (or to the upload, for /rotate)."""

    kind: Literal["identity", "element", "angle"]
    group: str | None = Field(None, description="The group, when a group element was asked for.")
    element: int | None = Field(None, description="The element index i = s*N + k (r^k m^s).")
    degrees: float = Field(ge=0, lt=360, description="Counter-clockwise rotation in degrees, in [0, 360).")
    reflection: bool = Field(description="Whether the image was first mirrored left-right.")
    exact: bool = Field(description="A quarter turn or mirror: an exact pixel permutation, no interpolation.")


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.CLASSIFY]})

    request_id: str
    filename: str | None = Field(description="The upload's file name, reduced to its last path component.")
    preprocess: PreprocessMode
    orientation_prior: OrientationPrior = OrientationPrior.NONE
    transform: TransformInfo
    predictions: list[ModelPrediction] = Field(description="One entry per loaded model, in GET /models order.")
    image: str | None = Field(
        None, description="With return_image=true: the 28x28 image the models saw, as a base64 PNG."
    )


class BatchItem(BaseModel):
    index: int = Field(ge=0, description="Position of the file in the request.")
    filename: str | None
    predictions: list[ModelPrediction]
    image: str | None = None


class ClassifyBatchResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.CLASSIFY_BATCH]})

    request_id: str
    preprocess: PreprocessMode
    orientation_prior: OrientationPrior = OrientationPrior.NONE
    transform: TransformInfo
    count: int = Field(ge=1)
    items: list[BatchItem]


class OrbitPrediction(BaseModel):
    model: str
    digit: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1)
    orientation_degrees: float | None = Field(
        default=None, ge=0, lt=360, description="The estimated turn of this row's input (G-CNNs with a joint head)."
    )
    ambiguous: bool = False


class OrbitRow(BaseModel):
    element: int = Field(ge=0)
    degrees: float = Field(ge=0, lt=360)
    reflection: bool
    predictions: list[OrbitPrediction]


class OrbitSummary(BaseModel):
    model: str
    upright_digit: int = Field(ge=0, le=9, description="The prediction for the identity element.")
    distinct_predictions: int = Field(ge=1, description="How many different digits the model answers over the orbit.")
    agreement: float = Field(
        ge=0, le=1, description="Fraction of the orbit's elements whose prediction equals the upright one."
    )


class OrbitResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ORBIT]})

    request_id: str
    filename: str | None
    group: str
    order: int = Field(ge=1)
    preprocess: PreprocessMode
    orientation_prior: OrientationPrior = OrientationPrior.NONE
    rows: list[OrbitRow] = Field(description="One row per group element, in element order (0 = identity).")
    summary: list[OrbitSummary] = Field(description="Per model: how stable its prediction is over the orbit.")
    image: str | None = Field(None, description="With return_image=true: the upright 28x28 input as base64 PNG.")


class ModelInfo(BaseModel):
    name: str
    architecture: str
    group: str | None = Field(description="The symmetry group the network is equivariant to; null for the plain CNN.")
    orientation: bool = Field(
        default=False, description="Whether its predictions say which way the digit is turned (a joint head)."
    )
    lean: float | None = Field(
        default=None,
        description=(
            "How strongly the reading of an upload centred after it was turned leans towards upright (the von Mises "
            "concentration of model.centring): the lean chosen for this network on the tuning set, or the default "
            "(1, chosen so for gcnn_c8_pose); null for a network that does not say how its input is turned."
        ),
    )
    parameters: int | None
    sha256: str = Field(description="SHA-256 of the weights file, verified at load time.")
    weights_file: str
    config: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Evaluation on the MNIST test set, upright and randomly rotated.")
    training: dict[str, Any] = Field(description="Training run: epochs, learning rate, history, ...")
    torch_version: str | None = None
    created: str | None = None


class ModelsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.MODELS]})

    models: list[ModelInfo]


class GroupElementInfo(BaseModel):
    index: int = Field(ge=0, description="i = s*N + k, standing for r^k m^s.")
    rotation: int = Field(ge=0, description="k: the number of 360/N-degree counter-clockwise steps.")
    degrees: float = Field(ge=0, lt=360)
    reflection: bool = Field(description="s = 1: mirror left-right first, then rotate.")
    exact: bool = Field(description="Maps the pixel grid onto itself (multiple of 90 degrees).")
    matrix: list[list[float]] = Field(description="2x2 matrix acting on plane points (x right, y up).")


class GroupResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "C4",
                    "order": 4,
                    "rotations": 4,
                    "reflections": False,
                    "elements": [
                        {
                            "index": 1,
                            "rotation": 1,
                            "degrees": 90.0,
                            "reflection": False,
                            "exact": True,
                            "matrix": [[0.0, -1.0], [1.0, 0.0]],
                        }
                    ],
                }
            ]
        }
    )

    name: str
    order: int
    rotations: int = Field(description="N: the number of rotations.")
    reflections: bool = Field(description="D_N (true) or C_N (false).")
    elements: list[GroupElementInfo]


class HealthResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "models": ["cnn_seed", "gcnn_c8_canon_pose_wide_gated_max_x5"],
                    "torch_threads": 1,
                    "inflight_requests": 3,
                    "max_inflight_requests": 64,
                    "inflight_bytes": 1843,
                    "max_inflight_bytes": 167772160,
                }
            ]
        }
    )

    status: Literal["ready"] = "ready"
    models: list[str]
    torch_threads: int
    inflight_requests: int = Field(ge=0, description="Upload requests in flight (GCNN_MAX_INFLIGHT_REQUESTS).")
    max_inflight_requests: int = Field(gt=0)
    inflight_bytes: int = Field(ge=0, description="Their declared body bytes (GCNN_MAX_INFLIGHT_BYTES).")
    max_inflight_bytes: int = Field(gt=0)
