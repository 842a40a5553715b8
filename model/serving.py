"""What a served network can do, asked of the network itself: one interface between a service and its models.

A network that a service runs implements :class:`ServingModel`: it says which
symmetry group it is built for (``None``: none), whether it estimates how its
input is turned (a pose, :class:`model.orientation.Pose`), and answers a batch
with digit probabilities plus, when it estimates one, that pose
(:meth:`ServingModel.predict`). A service asks these instead of branching on a
network's class or re-reading its card, so a new kind of network serves by
implementing them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch

from model.groups import Group
from model.orientation import Pose

__all__ = ["Prediction", "ServingModel", "as_serving"]


class Prediction(NamedTuple):
    """A network's answer for a batch of ``B`` inputs."""

    probabilities: torch.Tensor  # (B, classes) float32; for a network with a pose, the digit marginal p(d)
    pose: Pose | None  # which way each input is turned; None for a network without a pose estimate


@runtime_checkable
class ServingModel(Protocol):
    """The interface a service runs a network through (see the module docstring)."""

    @property
    def group(self) -> Group | None:
        """The symmetry group the network is built for; ``None`` for a network without one."""
        ...

    @property
    def has_pose(self) -> bool:
        """Whether :meth:`predict` answers a :class:`~model.orientation.Pose`."""
        ...

    def predict(self, images: torch.Tensor) -> Prediction:
        """The answer for ``images`` ``(B, C, H, W)``; call it in eval mode (under ``torch.inference_mode``)."""
        ...


def as_serving(model: object) -> ServingModel:
    """``model`` as a :class:`ServingModel`, or TypeError naming what it lacks."""
    if not isinstance(model, ServingModel):
        missing = [name for name in ("group", "has_pose", "predict") if not hasattr(model, name)]
        raise TypeError(f"{type(model).__name__} cannot be served: it lacks {', '.join(missing)}")
    return model
