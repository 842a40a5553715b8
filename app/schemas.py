"""Response bodies of the API (errors: :class:`app.guard.problems.Problem`)."""

from __future__ import annotations

import enum
from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

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

# The shipped gcnn_c8_canon_pose_wide_gated_max_x5 on app/static/sample-7.png turned by 135° (``group=C8&element=3``);
# the sample leans (upright, the same model reads it turned by 352.65°, 7.35° clockwise).
_PROBABILITIES_EXAMPLE = [0.0, 0.0, 2e-06, 0.0, 1e-06, 0.0, 0.0, 0.999996, 0.0, 0.0]
_PREDICTION_EXAMPLE: dict[str, Any] = {
    "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
    "digit": 7,
    "confidence": 0.999996,
    "probabilities": _PROBABILITIES_EXAMPLE,
    "top3": [
        {"digit": 7, "probability": 0.999996},
        {"digit": 2, "probability": 2e-06},
        {"digit": 4, "probability": 1e-06},
    ],
    "inference_ms": 4.98,
    "orientation": {"degrees": 128.59, "confidence": 0.999974},
    "readings": [
        {"digit": 7, "degrees": 128.59, "probability": 0.999996},
        {"digit": 2, "degrees": 177.66, "probability": 2e-06},
        {"digit": 4, "degrees": 120.54, "probability": 1e-06},
    ],
    "ambiguous": False,
    "upright_image": None,
}
_TRANSFORM_EXAMPLE: dict[str, Any] = {
    "kind": "element",
    "group": "C8",
    "element": 3,
    "degrees": 135.0,
    "reflection": False,
    "exact": False,
}


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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    # measured: curl -F file=@app/static/sample-7.png "http://127.0.0.1:8000/classify?group=C8&element=3"
                    "request_id": "762b6612a7f842c79459f642e7b5711c",
                    "filename": "sample-7.png",
                    "preprocess": "auto",
                    "orientation_prior": "none",
                    "transform": _TRANSFORM_EXAMPLE,
                    "predictions": [
                        {
                            **_PREDICTION_EXAMPLE,
                            "model": "cnn_seed",
                            "digit": 8,
                            "confidence": 0.823415,
                            "probabilities": [
                                5e-06,
                                1.9e-05,
                                8e-06,
                                0.00073,
                                0.001857,
                                0.173288,
                                0.000674,
                                3e-06,
                                0.823415,
                                1e-06,
                            ],
                            "top3": [
                                {"digit": 8, "probability": 0.823415},
                                {"digit": 5, "probability": 0.173288},
                                {"digit": 4, "probability": 0.001857},
                            ],
                            "inference_ms": 1.252,
                            "orientation": None,
                            "readings": [],
                        },
                        _PREDICTION_EXAMPLE,
                    ],
                    "image": None,
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "5f0c6a4e9b2d4f7e8a1c3b5d7e9f1a2b",
                    "preprocess": "auto",
                    "transform": {
                        "kind": "angle",
                        "group": None,
                        "element": None,
                        "degrees": 90.0,
                        "reflection": False,
                        "exact": True,
                    },
                    "count": 2,
                    "items": [
                        {
                            "index": 0,
                            "filename": "three.png",
                            "image": None,
                            "predictions": [
                                {**_PREDICTION_EXAMPLE, "model": "cnn_seed", "digit": 7, "confidence": 0.62},
                                {**_PREDICTION_EXAMPLE, "digit": 3, "confidence": 0.99},
                            ],
                        },
                        {
                            "index": 1,
                            "filename": "sample-7.png",
                            "image": None,
                            "predictions": [
                                {**_PREDICTION_EXAMPLE, "model": "cnn_seed", "digit": 8, "confidence": 0.51},
                                _PREDICTION_EXAMPLE,
                            ],
                        },
                    ],
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    # measured: curl -F file=@app/static/sample-6.png "http://127.0.0.1:8000/orbit?group=C4"
                    "request_id": "3ce77a3f12604b1da0404f9ca4433051",
                    "filename": "sample-6.png",
                    "group": "C4",
                    "order": 4,
                    "preprocess": "auto",
                    "orientation_prior": "none",
                    "rows": [
                        {
                            "element": k,
                            "degrees": 90.0 * k,
                            "reflection": False,
                            "predictions": [
                                {"model": "cnn_seed", "digit": d, "confidence": c, "ambiguous": False},
                                {
                                    "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
                                    "digit": 6,
                                    "confidence": 0.993621,
                                    "orientation_degrees": 3.0 + 90.0 * k,
                                    "ambiguous": False,
                                },
                            ],
                        }
                        for k, (d, c) in enumerate([(6, 0.999996), (9, 0.53229), (9, 0.848292), (5, 0.415463)])
                    ],
                    "summary": [
                        {"model": "cnn_seed", "upright_digit": 6, "distinct_predictions": 3, "agreement": 0.25},
                        {
                            "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
                            "upright_digit": 6,
                            "distinct_predictions": 1,
                            "agreement": 1.0,
                        },
                    ],
                    "image": None,
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    # the served G-CNN's entry of GET /models, its metrics and training record abbreviated
                    "models": [
                        {
                            "name": "gcnn_c8_canon_pose_wide_gated_max_x5",
                            "architecture": "GroupEquivariantCNN",
                            "group": "C8",
                            "orientation": True,
                            "lean": 0.5,
                            "parameters": 276506,
                            "sha256": "5b28f81fe977ec3a8d5b5ef0c81d4b4dbc516d23ba68ec68274f99754b9813e4",
                            "weights_file": "gcnn_c8_canon_pose_wide_gated_max_x5.safetensors",
                            "config": {
                                "in_channels": 1,
                                "out_channels": 10,
                                "kernel_size": 5,
                                "num_hidden": 4,
                                "hidden_channels": 14,
                                "padding": 2,
                                "pool_after": [0, 2],
                                "group": "C8",
                                "basis": "harmonic",
                                "group_pool": "max",
                                "head": "joint",
                                "pose_frequencies": 3,
                                "pose_trains_features": False,
                                "pose_gate": 128,
                                "pose_pool": "mean_max",
                                "pose_readers": 5,
                                "input_blur": 0.0,
                                "subsample": "blur",
                                "nonlinearity": "relu",
                                "band_limit": 0,
                                "canonicalize": True,
                                "canonical_centred": False,
                            },
                            "metrics": {
                                "test_digits": 10000,
                                "rotation_seed": 0,
                                "upright_accuracy": 0.9929,
                                "rotated_accuracy": 0.9929,
                                "rotated_6_as_9": 5,
                                "rotated_9_as_6": 0,
                                "orientation": {
                                    "rotated_orientation_median_error": 5.0539,
                                    "rotated_orientation_within_22_5": 0.9633,
                                    "six_nine_mistakes": 5,
                                    "six_nine_mistakes_flagged": 5,
                                },
                            },
                            "training": {
                                "model": "gcnn_c8_canon_pose_wide",
                                "epochs": 10,
                                "batch_size": 128,
                                "lr": 0.003,
                                "weight_decay": 0.0001,
                                "seed": 0,
                                "device": "cpu",
                                "threads": 2,
                                "train_digits": 60000,
                                "wall_time_s": 3279.5,
                            },
                            "torch_version": "2.14.1+cu130",
                            "created": "2026-12-07T18:43:58+00:00",
                        }
                    ]
                }
            ]
        }
    )

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
