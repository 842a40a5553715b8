"""From a grey image of any size to the 28x28 input the models were trained on.

MNIST digits are light ink on a black background, size-normalised to fit a
20x20 box (aspect ratio kept, anti-aliased) and placed in a 28x28 field with
their centre of mass at the centre. A user's upload is usually the opposite: a
dark pen stroke on light paper, large, off-centre. :func:`mnist_normalise`
repeats the MNIST recipe on such an image:

1. polarity: the border's median tells the paper from the ink; light paper is inverted;
2. contrast: paper level -> 0, brightest ink -> 1, faint background noise -> 0; when
   the border is unevenly lit (a shadow across a photographed sheet), the paper
   level is estimated locally rather than once;
3. crop to the ink (a tiny fraction of stray ink mass at the extremes is ignored,
   so a speck of dust does not stretch the box);
4. thin strokes are thickened towards MNIST's pen width (a fine pen on a large
   sheet would otherwise shrink to a faint hairline);
5. scale to fit 20x20, keeping the aspect ratio;
6. paste into 28x28 with the centre of mass at pixel ``(14, 14)`` (row, column,
   0-based), where MNIST puts it. That is half a pixel off the grid centre
   ``(13.5, 13.5)`` that :mod:`model.rotation` rotates about, and the models
   have learnt it: a G-CNN that is exactly invariant to quarter turns tells an
   upright 6 from an upright 9 only by that offset, so centring on 13.5 instead
   costs it ~6 points of accuracy (mostly 6/9 confusions).

Modes (the ``preprocess`` query parameter):

- ``auto``: a 28x28 image that already looks like MNIST (dark border, light ink)
  passes through unchanged; anything else gets :func:`mnist_normalise`.
- ``mnist``: always :func:`mnist_normalise`.
- ``none``: grey conversion and a plain resize to 28x28, nothing else.

Every mode refuses an image without ink (no contrast at all): there is nothing
to classify, and a confident answer about a blank page would mislead.
"""

from __future__ import annotations

import enum

import numpy as np
from PIL import Image, ImageFilter

from app.errors import NoInkError

__all__ = ["DIGIT_BOX", "INPUT_SIZE", "PreprocessMode", "looks_like_mnist", "mnist_normalise", "to_model_input"]

INPUT_SIZE = 28
DIGIT_BOX = 20
MNIST_CENTRE = 14.0  # where MNIST's centre of mass sits (measured on the test set: 13.99, 14.01)
MIN_CONTRAST = 24  # grey levels (of 255) between paper and ink; below this the image is blank
_UNEVEN_PAPER = 0.12  # spread of the paper level along the border above which the light is uneven
_PAPER_THUMBNAIL = 48  # long side (px) at which the paper's light is estimated
_NOISE_FLOOR = 0.2  # normalised intensity below which a pixel is background (paper texture, JPEG ringing)
_INK_LEVEL = 0.4  # normalised intensity that counts as ink when cropping
_STRAY_INK = 0.002  # fraction of ink mass ignored at each extreme when cropping
_WORK_SIZE = 80  # long side (px) of the crop while strokes are normalised: 4x the 20 px box
# Pen width, as _stroke_width estimates it at _WORK_SIZE, below which a digit is thinner than ~90% of
# MNIST's (measured on the test set: 5th percentile 2.6, median 3.9). Only such digits are thickened.
_MIN_STROKE = 3.0
_DILATIONS = 4  # at most 8 px of extra pen width at _WORK_SIZE (2 px at 20 px)


class PreprocessMode(enum.StrEnum):
    AUTO = "auto"
    MNIST = "mnist"
    NONE = "none"


def to_model_input(grey: np.ndarray, mode: PreprocessMode = PreprocessMode.AUTO) -> np.ndarray:
    """The ``(28, 28)`` float32 image in [0, 1] (light ink on black) for an 8-bit grey ``(H, W)`` image.

    Raises:
        NoInkError: the image has no contrast (blank, or a single pixel).
    """
    if int(grey.max()) - int(grey.min()) < MIN_CONTRAST:
        raise NoInkError(
            "no digit found: the image has no contrast (it is blank, uniform or a single pixel); "
            "send a digit written on a plain background"
        )
    if mode is PreprocessMode.NONE:
        return _resize(grey.astype(np.float32) / 255.0, INPUT_SIZE, INPUT_SIZE)
    if mode is PreprocessMode.AUTO and looks_like_mnist(grey):
        return grey.astype(np.float32) / 255.0
    return mnist_normalise(grey)


def looks_like_mnist(grey: np.ndarray) -> bool:
    """A 28x28 image whose outer two-pixel frame is (nearly) black and whose ink is light."""
    if grey.shape != (INPUT_SIZE, INPUT_SIZE):
        return False
    frame = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[2:-2, :2].ravel(), grey[2:-2, -2:].ravel()])
    return float(frame.mean()) <= 25.0 and int(grey.max()) >= 128


def mnist_normalise(grey: np.ndarray) -> np.ndarray:
    """MNIST's recipe on any 8-bit grey image (see the module docstring); ``(28, 28)`` float32."""
    ink = _ink_intensity(grey)
    top, bottom, left, right = _ink_box(ink)
    digit = _normalise_strokes(_clean(ink[top:bottom, left:right]))
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    digit = _resize(digit, max(1, round(height * scale)), max(1, round(width * scale)))
    peak = float(digit.max())
    if peak <= 0.0:
        raise NoInkError("no digit found: the ink vanished when scaled to 20x20 pixels")
    return _centre_by_mass(np.clip(digit / peak, 0.0, 1.0))


def _ink_intensity(grey: np.ndarray) -> np.ndarray:
    """How much the ink stands out from the paper at each pixel, float32 >= 0, whatever the polarity."""
    values = grey.astype(np.float32) / 255.0
    frame = _frame(values)
    if float(np.median(frame)) > 0.5:  # light paper, dark ink
        values, frame = 1.0 - values, 1.0 - frame
    # under a shadow or a light gradient across the sheet the paper level is local, else one number
    paper = _paper_level(values) if _light_is_uneven(values) else float(np.median(frame))
    ink = values - paper
    np.clip(ink, 0.0, None, out=ink)
    if float(ink.max()) * 255.0 < MIN_CONTRAST:
        raise NoInkError("no digit found: nothing stands out from the background")
    return ink


def _frame(values: np.ndarray) -> np.ndarray:
    """The pixels of the outer 5% of the image: where the paper shows."""
    border = max(1, round(min(values.shape) * 0.05))
    return np.concatenate(
        [values[:border].ravel(), values[-border:].ravel(), values[:, :border].ravel(), values[:, -border:].ravel()]
    )


def _light_is_uneven(values: np.ndarray) -> bool:
    """Whether the paper's level changes along the border (a shadow), as opposed to ink touching it.

    The border is cut into 16 stretches; each stretch's median is its paper level
    unless ink covers most of it. A shadow spreads those levels apart; a digit that
    touches the edge moves only a few of them, which the interquartile range ignores.
    """
    border = max(1, round(min(values.shape) * 0.05))
    sides = [values[:border], values[-border:], values[:, :border].T, values[:, -border:].T]
    levels = [float(np.median(stretch)) for side in sides for stretch in np.array_split(side, 4, axis=1)]
    low, high = np.percentile(levels, [25, 75])
    return float(high - low) > _UNEVEN_PAPER


def _paper_level(values: np.ndarray) -> np.ndarray:
    """The paper's own level under uneven light, for ink brighter than paper: a morphological opening
    (min, then max, over ~10% of the image) of a 48 px thumbnail removes the strokes and keeps the light."""
    height, width = values.shape
    scale = _PAPER_THUMBNAIL / max(height, width)
    small = Image.fromarray(_resize(values, max(5, round(height * scale)), max(5, round(width * scale))))
    paper = small.filter(ImageFilter.MinFilter(5)).filter(ImageFilter.MaxFilter(5))
    return np.asarray(paper.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` (bottom/right exclusive) around the ink mass."""
    mass = np.where(ink >= _INK_LEVEL * float(ink.max()), ink, 0.0)
    top, bottom = _mass_interval(mass.sum(axis=1))
    left, right = _mass_interval(mass.sum(axis=0))
    return top, bottom, left, right


def _mass_interval(profile: np.ndarray) -> tuple[int, int]:
    cumulative = np.cumsum(profile, dtype=np.float64)
    total = cumulative[-1]
    start = int(np.searchsorted(cumulative, total * _STRAY_INK, side="right"))
    stop = int(np.searchsorted(cumulative, total * (1.0 - _STRAY_INK), side="left")) + 1
    return start, max(stop, start + 1)


def _clean(crop: np.ndarray) -> np.ndarray:
    """The cropped ink scaled to [0, 1] by its own peak (so a speck outside the crop changes nothing),
    with paper texture and compression noise set to exactly 0, as MNIST's background is."""
    scaled = crop / float(crop.max())
    scaled[scaled < _NOISE_FLOOR] = 0.0
    return scaled


def _normalise_strokes(crop: np.ndarray) -> np.ndarray:
    """The crop at a working size (long side 80 px), strokes thickened to at least MNIST's pen width."""
    height, width = crop.shape
    scale = _WORK_SIZE / max(height, width)
    work = _resize(crop, max(1, round(height * scale)), max(1, round(width * scale)))
    # room to grow: a thin vertical stroke (a '1') is only a pixel or two wide here
    image = Image.fromarray(np.pad(work, _DILATIONS))
    for _ in range(_DILATIONS):  # each 3x3 dilation widens a stroke by 2 px
        if _stroke_width(np.asarray(image)) >= _MIN_STROKE:
            break
        image = image.filter(ImageFilter.MaxFilter(3))
    grown = np.asarray(image, dtype=np.float32)
    rows, cols = np.nonzero(grown > 0.0)
    return grown[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _stroke_width(ink: np.ndarray) -> float:
    """Mean pen width in pixels: ink area over its length, the length being half the outline (long strokes)."""
    mask = ink >= 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    edges = (
        (padded[1:-1, 1:-1] != padded[:-2, 1:-1]).sum()
        + (padded[1:-1, 1:-1] != padded[2:, 1:-1]).sum()
        + (padded[1:-1, 1:-1] != padded[1:-1, :-2]).sum()
        + (padded[1:-1, 1:-1] != padded[1:-1, 2:]).sum()
    )
    return 2.0 * area / max(int(edges), 1)


def _resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of float32 ``(H, W)``: area averaging down, bilinear up."""
    if values.shape == (height, width):
        return values.astype(np.float32, copy=True)
    shrinking = height < values.shape[0] or width < values.shape[1]
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(image.resize((width, height), resample), dtype=np.float32)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste ``digit`` (at most 20x20) into a black 28x28 field, centre of mass at MNIST's (14, 14)."""
    height, width = digit.shape
    total = float(digit.sum())
    rows, cols = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    com_row = float(digit.sum(axis=1) @ rows) / total
    com_col = float(digit.sum(axis=0) @ cols) / total
    top = min(max(round(MNIST_CENTRE - com_row), 0), INPUT_SIZE - height)
    left = min(max(round(MNIST_CENTRE - com_col), 0), INPUT_SIZE - width)
    field = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field
