"""What the decode processes run: an upload's bytes in, a small array out.

Everything here is plain NumPy and Pillow (never torch), so that
:mod:`app.pictures.sandbox` can run it in small worker processes with a time and memory
budget; an upload that costs more is stopped there, not in the service.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from PIL import Image

from app.pictures.imaging import decode_image, load_frame, open_image, to_display_pixels, to_grey
from app.pictures.preprocessing import PreprocessMode, to_model_input

__all__ = ["DECODE_FUNCTIONS", "DECODE_MAX_SIDE", "DECODE_MIN_SIDE", "display_pixels", "input_of", "model_input"]

# A JPEG may be decoded at 1/2, 1/4 or 1/8 scale if its short side stays above this:
# enough for a digit that fills a fraction of a photo to keep ~100 px before it shrinks to 20.
DECODE_MIN_SIDE = 512
# Any other image is reduced (box filter, integer factor) to this long side after decoding, so the
# preprocessing of a 16-megapixel scan costs what a 4-megapixel one does.
DECODE_MAX_SIDE = 2048


def model_input(data: bytes, max_pixels: int, mode: PreprocessMode | str) -> np.ndarray:
    """Upload bytes -> the upright ``(28, 28)`` float32 input (see :mod:`app.pictures.preprocessing`)."""
    return input_of(open_image(data, max_pixels), mode)


def input_of(header: Image.Image, mode: PreprocessMode | str) -> np.ndarray:
    """An upload :func:`app.pictures.imaging.open_image` opened (its limits checked, no pixel decoded) -> its
    ``(28, 28)`` input: :func:`model_input` after the header, for an upload whose header is open already."""
    image = load_frame(header, min_side=DECODE_MIN_SIDE, max_side=DECODE_MAX_SIDE)
    return to_model_input(to_grey(image), PreprocessMode(mode))


def display_pixels(data: bytes, max_pixels: int) -> np.ndarray:
    """Upload bytes -> 8-bit pixels to show (``/rotate``), the pixel limit checked on the header."""
    return to_display_pixels(decode_image(data, max_pixels))


# What a decode process may run: callers hand :meth:`app.pictures.sandbox.DecodePool.run` the function itself;
# the wire carries its ``__name__``, and the process looks it up here.
DECODE_FUNCTIONS: Final = (model_input, display_pixels)
