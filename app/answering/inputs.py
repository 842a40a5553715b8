"""A request's inputs on their way to the models: its pictures, how they become input, the batch they make.

The pipeline (:mod:`app.answering.pipeline`) decodes each upload once and hands the engine
(:mod:`app.answering.inference`) a :class:`ModelInputs`: plain data. The engine builds the
``(B, 1, 28, 28)`` batch with :meth:`ModelInputs.batch` on the torch worker, where
a small upload (its header already opened and checked) is decoded in the same hop
as the forward pass; nothing calls back up into the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from app.errors import InputError
from app.pictures.decoding import input_of
from app.pictures.preprocessing import PreprocessMode
from app.pictures.transforms import Transform
from model.groups import Group

__all__ = ["InputSpec", "ModelInputs", "Picture", "about_file"]

# An upload on its way to the models: its (28, 28) float32 input, decoded in a decode process, or, for a
# small upload, its opened header (no pixel decoded yet), decoded on the torch worker with the batch.
Picture = np.ndarray | Image.Image


@dataclass(frozen=True)
class InputSpec:
    """How every upload of a request becomes model input.

    Attributes:
        max_pixels: the decode limit, checked on each upload's header.
        mode: the preprocessing (:mod:`app.pictures.preprocessing`).
        transform: applied to each ``28x28`` input (a group element or an angle).
        orbit: when set, the batch holds every element of this group applied to each input
            (``/orbit``): ``|G| * B`` rows, element-major (row ``g * B + b`` is element ``g`` of input ``b``).
    """

    max_pixels: int
    mode: PreprocessMode = PreprocessMode.AUTO
    transform: Transform = field(default_factory=Transform)
    orbit: Group | None = None


@dataclass(frozen=True)
class ModelInputs:
    """One request's pictures (one per upload, ``filenames`` alike) and the spec they follow."""

    pictures: Sequence[Picture]
    filenames: Sequence[str | None]
    spec: InputSpec

    def batch(self) -> torch.Tensor:
        """The ``(B, 1, 28, 28)`` batch (``(|G| * B, ...)`` with an orbit); call it on the torch worker.

        Raises:
            InputError: a small upload does not decode (naming its file in a batch of several).
        """
        images = []
        for index, picture in enumerate(self.pictures):
            try:
                images.append(input_of(picture, self.spec.mode) if isinstance(picture, Image.Image) else picture)
            except InputError as error:
                raise about_file(error, index, self.filenames) from error
        batch = self.spec.transform.apply(torch.from_numpy(np.stack(images))[:, None])  # (B, 1, 28, 28)
        group = self.spec.orbit
        if group is None:
            return batch
        return torch.cat([group.transform_images(batch, g) for g in group.elements()])  # (|G| * B, 1, 28, 28)


def about_file(error: InputError, index: int, filenames: Sequence[str | None]) -> InputError:
    """In a batch, the error names the file it is about (a single upload's error stands as it is)."""
    if len(filenames) == 1:
        return error
    return type(error)(f"file {index} ({filenames[index] or 'unnamed'}): {error}")
