"""The response examples of the OpenAPI document (Swagger UI shows them): answers the service gave.

Each is the shipped models' answer to the request its comment names (docs/api.md shows the same answers), its
``request_id`` that answer's; ``tests/app/test_schemas.py`` checks that every example validates against its schema
and names only the models served by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["CLASSIFY", "CLASSIFY_BATCH", "MODELS", "ORBIT", "prediction"]

CNN = "cnn_seed"
GCNN = "gcnn_c8_canon_pose_wide_gated_max_x5"


def prediction(
    model: str,
    probabilities: list[float],
    top3: list[tuple[int, float]],
    inference_ms: float,
    orientation: tuple[float, float] | None = None,
    readings: Sequence[tuple[int, float, float]] = (),
) -> dict[str, Any]:
    """One model's answer as the service printed it: ``top3`` as ``(digit, probability)`` (its first is the
    answer), ``orientation`` as ``(degrees, confidence)``, ``readings`` as ``(digit, degrees, probability)``;
    none of the examples is flagged ambiguous or asked for the upright image."""
    return {
        "model": model,
        "digit": top3[0][0],
        "confidence": top3[0][1],
        "probabilities": probabilities,
        "top3": [{"digit": digit, "probability": p} for digit, p in top3],
        "inference_ms": inference_ms,
        "orientation": None if orientation is None else {"degrees": orientation[0], "confidence": orientation[1]},
        "readings": [{"digit": digit, "degrees": degrees, "probability": p} for digit, degrees, p in readings],
        "ambiguous": False,
        "upright_image": None,
    }


# measured: curl -F file=@app/static/sample-7.png "http://127.0.0.1:8000/classify?group=C8&element=3"; the sample
# leans (upright, the served G-CNN reads it turned by 352.65°, 7.35° clockwise)
CLASSIFY: dict[str, Any] = {
    "request_id": "762b6612a7f842c79459f642e7b5711c",
    "filename": "sample-7.png",
    "preprocess": "auto",
    "orientation_prior": "none",
    "transform": {
        "kind": "element",
        "group": "C8",
        "element": 3,
        "degrees": 135.0,
        "reflection": False,
        "exact": False,
    },
    "predictions": [
        prediction(
            CNN,
            [5e-06, 1.9e-05, 8e-06, 0.00073, 0.001857, 0.173288, 0.000674, 3e-06, 0.823415, 1e-06],
            [(8, 0.823415), (5, 0.173288), (4, 0.001857)],
            1.252,
        ),
        prediction(
            GCNN,
            [0.0, 0.0, 2e-06, 0.0, 1e-06, 0.0, 0.0, 0.999996, 0.0, 0.0],
            [(7, 0.999996), (2, 2e-06), (4, 1e-06)],
            4.98,
            (128.59, 0.999974),
            [(7, 128.59, 0.999996), (2, 177.66, 2e-06), (4, 120.54, 1e-06)],
        ),
    ],
    "image": None,
}


# measured: curl -F files=@app/static/sample-3.png -F files=@app/static/sample-7.png \
#   "http://127.0.0.1:8000/classify/batch?angle=90" (docs/api.md's request with two of its three files)
CLASSIFY_BATCH: dict[str, Any] = {
    "request_id": "0ed6d54cd8174138ae34e8242abd82e5",
    "preprocess": "auto",
    "orientation_prior": "none",
    "transform": {"kind": "angle", "group": None, "element": None, "degrees": 90.0, "reflection": False, "exact": True},
    "count": 2,
    "items": [
        {
            "index": 0,
            "filename": "sample-3.png",
            "predictions": [
                prediction(
                    CNN,
                    [
                        0.021141,
                        0.000187,
                        0.005584,
                        0.001649,
                        0.000907,
                        0.001255,
                        0.000651,
                        0.965723,
                        0.000531,
                        0.002373,
                    ],
                    [(7, 0.965723), (0, 0.021141), (2, 0.005584)],
                    1.631,
                ),
                prediction(
                    GCNN,
                    [
                        0.000381,
                        0.002337,
                        0.000165,
                        0.953556,
                        0.000643,
                        0.000814,
                        0.000668,
                        0.001262,
                        0.028567,
                        0.011608,
                    ],
                    [(3, 0.953556), (8, 0.028567), (9, 0.011608)],
                    27.01,
                    (92.05, 0.843577),
                    [(3, 92.05, 0.899899), (3, 285.23, 0.053656), (8, 283.23, 0.028198)],
                ),
            ],
            "image": None,
        },
        {
            "index": 1,
            "filename": "sample-7.png",
            "predictions": [
                prediction(
                    CNN,
                    [0.01608, 0.012028, 0.035374, 0.001922, 0.092634, 0.247473, 0.005515, 0.148418, 0.439556, 0.001],
                    [(8, 0.439556), (5, 0.247473), (7, 0.148418)],
                    1.631,
                ),
                prediction(
                    GCNN,
                    [0.0, 1e-06, 3e-06, 0.0, 3e-06, 6e-06, 0.0, 0.999987, 0.0, 0.0],
                    [(7, 0.999987), (5, 6e-06), (4, 3e-06)],
                    27.01,
                    (82.65, 0.99998),
                    [(7, 82.65, 0.999987), (5, 270.16, 5e-06), (4, 230.78, 3e-06)],
                ),
            ],
            "image": None,
        },
    ],
}


ORBIT: dict[str, Any] = {
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
                {"model": CNN, "digit": d, "confidence": c, "ambiguous": False},
                {
                    "model": GCNN,
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
        {"model": CNN, "upright_digit": 6, "distinct_predictions": 3, "agreement": 0.25},
        {
            "model": GCNN,
            "upright_digit": 6,
            "distinct_predictions": 1,
            "agreement": 1.0,
        },
    ],
    "image": None,
}


MODELS: dict[str, Any] = {
    # the served G-CNN's entry of GET /models, its metrics and training record abbreviated
    "models": [
        {
            "name": GCNN,
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
