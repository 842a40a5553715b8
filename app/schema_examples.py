"""The response examples of the OpenAPI document (Swagger UI shows them): answers the service gave.

Each is the shipped models' answer to the request its comment names (docs/api.md shows the same answers), its
``request_id`` that answer's; ``tests/app/test_schemas.py`` checks that every example validates against its schema
and names only the models served by default.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLASSIFY", "CLASSIFY_BATCH", "MODELS", "ORBIT", "PREDICTION", "PROBABILITIES", "TRANSFORM"]

# The shipped gcnn_c8_canon_pose_wide_gated_max_x5 on app/static/sample-7.png turned by 135° (``group=C8&element=3``);
# the sample leans (upright, the same model reads it turned by 352.65°, 7.35° clockwise).
PROBABILITIES = [0.0, 0.0, 2e-06, 0.0, 1e-06, 0.0, 0.0, 0.999996, 0.0, 0.0]
PREDICTION: dict[str, Any] = {
    "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
    "digit": 7,
    "confidence": 0.999996,
    "probabilities": PROBABILITIES,
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
TRANSFORM: dict[str, Any] = {
    "kind": "element",
    "group": "C8",
    "element": 3,
    "degrees": 135.0,
    "reflection": False,
    "exact": False,
}


CLASSIFY: dict[str, Any] = {
    # measured: curl -F file=@app/static/sample-7.png "http://127.0.0.1:8000/classify?group=C8&element=3"
    "request_id": "762b6612a7f842c79459f642e7b5711c",
    "filename": "sample-7.png",
    "preprocess": "auto",
    "orientation_prior": "none",
    "transform": TRANSFORM,
    "predictions": [
        {
            **PREDICTION,
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
        PREDICTION,
    ],
    "image": None,
}


# measured: curl -F files=@app/static/sample-3.png -F files=@app/static/sample-7.png \
#   "http://127.0.0.1:8000/classify/batch?angle=90" (of docs/api.md, two of its three files)
CLASSIFY_BATCH: dict[str, Any] = {
    "request_id": "0ed6d54cd8174138ae34e8242abd82e5",
    "preprocess": "auto",
    "orientation_prior": "none",
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
            "filename": "sample-3.png",
            "predictions": [
                {
                    "model": "cnn_seed",
                    "digit": 7,
                    "confidence": 0.965723,
                    "probabilities": [
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
                    "top3": [
                        {"digit": 7, "probability": 0.965723},
                        {"digit": 0, "probability": 0.021141},
                        {"digit": 2, "probability": 0.005584},
                    ],
                    "inference_ms": 1.631,
                    "orientation": None,
                    "readings": [],
                    "ambiguous": False,
                    "upright_image": None,
                },
                {
                    "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
                    "digit": 3,
                    "confidence": 0.953556,
                    "probabilities": [
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
                    "top3": [
                        {"digit": 3, "probability": 0.953556},
                        {"digit": 8, "probability": 0.028567},
                        {"digit": 9, "probability": 0.011608},
                    ],
                    "inference_ms": 27.01,
                    "orientation": {"degrees": 92.05, "confidence": 0.843577},
                    "readings": [
                        {"digit": 3, "degrees": 92.05, "probability": 0.899899},
                        {"digit": 3, "degrees": 285.23, "probability": 0.053656},
                        {"digit": 8, "degrees": 283.23, "probability": 0.028198},
                    ],
                    "ambiguous": False,
                    "upright_image": None,
                },
            ],
            "image": None,
        },
        {
            "index": 1,
            "filename": "sample-7.png",
            "predictions": [
                {
                    "model": "cnn_seed",
                    "digit": 8,
                    "confidence": 0.439556,
                    "probabilities": [
                        0.01608,
                        0.012028,
                        0.035374,
                        0.001922,
                        0.092634,
                        0.247473,
                        0.005515,
                        0.148418,
                        0.439556,
                        0.001,
                    ],
                    "top3": [
                        {"digit": 8, "probability": 0.439556},
                        {"digit": 5, "probability": 0.247473},
                        {"digit": 7, "probability": 0.148418},
                    ],
                    "inference_ms": 1.631,
                    "orientation": None,
                    "readings": [],
                    "ambiguous": False,
                    "upright_image": None,
                },
                {
                    "model": "gcnn_c8_canon_pose_wide_gated_max_x5",
                    "digit": 7,
                    "confidence": 0.999987,
                    "probabilities": [0.0, 1e-06, 3e-06, 0.0, 3e-06, 6e-06, 0.0, 0.999987, 0.0, 0.0],
                    "top3": [
                        {"digit": 7, "probability": 0.999987},
                        {"digit": 5, "probability": 6e-06},
                        {"digit": 4, "probability": 3e-06},
                    ],
                    "inference_ms": 27.01,
                    "orientation": {"degrees": 82.65, "confidence": 0.99998},
                    "readings": [
                        {"digit": 7, "degrees": 82.65, "probability": 0.999987},
                        {"digit": 5, "degrees": 270.16, "probability": 5e-06},
                        {"digit": 4, "degrees": 230.78, "probability": 3e-06},
                    ],
                    "ambiguous": False,
                    "upright_image": None,
                },
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


MODELS: dict[str, Any] = {
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
