"""The models' outputs for a batch -> the API's answer per image: digit, probabilities, orientation, readings.

What the models say (:class:`ModelOutput`, one per model, for a whole batch) is
turned into the response rows here and nowhere else, so that every endpoint
answers alike and the readiness self-test (:func:`app.answering.inference.self_test`)
can build the very answers a request gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from app.pictures.imaging import png_base64
from app.schemas import ModelPrediction, OrientationInfo, OrientationPrior, ReadingInfo, TopPrediction
from model.orientation import Pose, angles, upright_prior
from model.rotation import rotate

__all__ = ["ModelOutput", "predictions", "to_png_base64", "with_prior"]


@dataclass(frozen=True)
class ModelOutput:
    """One model's answer for a batch."""

    name: str
    probabilities: torch.Tensor  # (B, 10), softmax of the logits (for a joint head: the digit marginal)
    seconds: float  # forward pass + softmax, for the whole batch
    pose: Pose | None = None  # a G-CNN with a joint head: which way each input is turned (model.orientation)

    def rows(self, index: slice) -> ModelOutput:
        return ModelOutput(self.name, self.probabilities[index], self.seconds, self.pose and self.pose.rows(index))


def with_prior(output: ModelOutput, prior: OrientationPrior, turned: Sequence[float] | float = 0.0) -> Pose | None:
    """A joint-head model's poses, weighed by the requested orientation prior; None for the others.

    The ``upright`` prior is about the upload: when the service turned it (a transform, or an
    ``/orbit`` element) by ``turned`` degrees (one angle, or one per input), the model input is
    expected near that angle, and the prior is centred there.
    """
    if output.pose is None or prior is OrientationPrior.NONE:
        return output.pose
    centre = torch.as_tensor(turned, dtype=torch.float64).reshape(-1, 1)  # (1 or B, 1)
    return output.pose.with_prior(upright_prior(angles()[None, :] - centre))


def predictions(
    outputs: Sequence[ModelOutput],
    prior: OrientationPrior = OrientationPrior.NONE,
    batch: torch.Tensor | None = None,
    turned: Sequence[float] | float = 0.0,
) -> list[list[ModelPrediction]]:
    """Per image, every model's prediction (``result[b][m]``); ``turned``: the degrees by which the
    service turned the upload(s) (see :func:`with_prior`). Given the ``(B, 1, 28, 28)`` ``batch``
    (``return_image=true``), a joint-head model's predictions carry the input turned upright too."""
    columns = [_column(output, with_prior(output, prior, turned), batch) for output in outputs]
    return [list(row) for row in zip(*columns, strict=True)]


def _column(output: ModelOutput, pose: Pose | None, batch: torch.Tensor | None) -> list[ModelPrediction]:
    """One model's predictions for the whole batch."""
    if pose is None:
        return [_prediction(output, row) for row in output.probabilities.tolist()]
    found, readings = pose.orientation(), pose.top_readings(3)
    ambiguous = readings.ambiguous().tolist()
    column = []
    for b, row in enumerate(pose.digit_probabilities.tolist()):
        degrees = float(found.degrees[b])
        extra = {
            "orientation": OrientationInfo(degrees=_degrees(degrees), confidence=round(float(found.confidence[b]), 6)),
            "readings": [
                ReadingInfo(digit=int(d), degrees=_degrees(float(a)), probability=round(float(p), 6))
                for d, a, p in zip(readings.digits[b], readings.degrees[b], readings.probabilities[b], strict=True)
            ],
            "ambiguous": ambiguous[b],
            "upright_image": to_png_base64(rotate(batch[b, 0], -degrees)) if batch is not None else None,
        }
        column.append(_prediction(output, row, **extra))
    return column


def _degrees(value: float) -> float:
    """An angle for the API: two decimals, in [0, 360)."""
    return round(value, 2) % 360.0


def _prediction(output: ModelOutput, probabilities: list[float], **orientation: Any) -> ModelPrediction:
    ranked = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)
    rounded = [round(p, 6) for p in probabilities]
    return ModelPrediction(
        model=output.name,
        digit=ranked[0],
        confidence=rounded[ranked[0]],
        probabilities=rounded,
        top3=[TopPrediction(digit=d, probability=rounded[d]) for d in ranked[:3]],
        inference_ms=round(output.seconds * 1000, 3),
        **orientation,
    )


def to_png_base64(image: torch.Tensor) -> str:
    """A ``(28, 28)`` float image in [0, 1] as a base64 grey PNG."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return png_base64(pixels)
