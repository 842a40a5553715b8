"""From a grey image of any size to the 28x28 input the models were trained on.

MNIST digits are light ink on a black background, size-normalised to fit a
20x20 box (aspect ratio kept, anti-aliased) and placed in a 28x28 field with
their centre of mass at the centre. A user's upload is usually the opposite: a
dark pen stroke on light paper, large, off-centre. :func:`mnist_normalise`
repeats the MNIST recipe on such an image:

1. enlarged pixels smoothed: a small scan enlarged by repeating every pixel as a
   k x k block (k >= 2) is reduced to its own pixels and enlarged again with a
   Lanczos filter. The blocks' stair-stepped edges run along the pixel grid
   whichever way the digit is turned, and a network trained on MNIST's smooth
   strokes reads stairs as strokes; a smooth edge turns with the digit;
2. polarity: the border's median tells the paper from the ink; light paper is inverted;
3. contrast: paper level -> 0, brightest ink -> 1, faint background noise -> 0; when
   the border is unevenly lit (a shadow across a photographed sheet), the paper
   level is estimated locally rather than once;
4. clutter removed: ruled or squared lines across the picture, an underline below
   the digit, and detached specks (the digit is the heaviest connected piece of
   ink and the pieces near it);
5. crop to the ink (a tiny fraction of stray ink mass at the extremes is ignored,
   so a speck of dust does not stretch the box);
6. thin strokes are thickened towards MNIST's pen width (a fine pen on a large
   sheet would otherwise shrink to a faint hairline);
7. scale to fit 20x20, keeping the aspect ratio;
8. paste into 28x28 with the centre of mass at pixel ``(14, 14)`` (row, column,
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
import math

import numpy as np
from PIL import Image, ImageFilter

from app.errors import NoInkError

__all__ = [
    "DIGIT_BOX",
    "INPUT_SIZE",
    "PreprocessMode",
    "looks_like_mnist",
    "mnist_normalise",
    "pixel_block_size",
    "to_model_input",
]

INPUT_SIZE = 28
DIGIT_BOX = 20
# where MNIST's centre of mass sits (measured on the test set: 13.99, 14.01); model.centring.MNIST_CENTRE says the
# same for the model side (this module runs in decode processes without torch; a test holds the two equal)
MNIST_CENTRE = 14.0
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
_CLUTTER_SIZE = 48  # long side (px) at which the pieces of ink are told apart (a few ms in Python at most)
_NEAR = 0.25  # a piece further than this (in sizes of the main piece) from the digit is not part of it
_SPECK = 0.03  # a detached piece with less ink than this share of the digit's is a speck
_MIN_NATIVE = 4  # an image whose blocks leave fewer pixels than this on its short side is not undone


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
    ink = _without_clutter(_ink_intensity(_smooth_enlarged_pixels(grey)))
    top, bottom, left, right = _ink_box(ink)
    digit = _normalise_strokes(_clean(ink[top:bottom, left:right]))
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    digit = _resize(digit, max(1, round(height * scale)), max(1, round(width * scale)))
    peak = float(digit.max())
    if peak <= 0.0:
        raise NoInkError("no digit found: the ink vanished when scaled to 20x20 pixels")
    return _centre_by_mass(np.clip(digit / peak, 0.0, 1.0))


def pixel_block_size(grey: np.ndarray) -> int:
    """``k`` when every pixel of ``grey`` is one of ``k x k`` equal blocks (``k >= 2``) that leave at least
    ``_MIN_NATIVE`` pixels on the short side; 1 otherwise. The candidate is the largest ``k`` that divides both
    sides and every place where a row or column differs from the one before; one comparison confirms it."""
    height, width = grey.shape
    changed_columns = np.flatnonzero(np.any(grey[:, 1:] != grey[:, :-1], axis=0)) + 1
    changed_rows = np.flatnonzero(np.any(grey[1:] != grey[:-1], axis=1)) + 1
    k = math.gcd(height, width, *changed_columns.tolist(), *changed_rows.tolist())
    if k < 2 or min(height, width) // k < _MIN_NATIVE:
        return 1
    native = grey[::k, ::k]
    blocks = grey.reshape(height // k, k, width // k, k)
    return k if np.array_equal(blocks, np.broadcast_to(native[:, None, :, None], blocks.shape)) else 1


def _smooth_enlarged_pixels(grey: np.ndarray) -> np.ndarray:
    """``grey`` with blocks of repeated pixels (:func:`pixel_block_size`) enlarged again by a Lanczos filter from
    the native pixels, at the same size; any other image as it is."""
    k = pixel_block_size(grey)
    if k == 1:
        return grey
    height, width = grey.shape
    native = Image.fromarray(np.ascontiguousarray(grey[::k, ::k]))
    return np.asarray(native.resize((width, height), Image.Resampling.LANCZOS))


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

    The border is cut into 16 stretches; each stretch's 10th percentile is its paper level
    (``values`` has ink brighter than paper) unless ink covers 90% of it. A shadow spreads
    those levels apart; a digit that touches the edge moves only a few of them, which the
    interquartile range ignores. (A stretch's median was ink wherever ink covered half of
    it: a bold digit cropped tight moved a third of the levels and was taken for a shadow.)
    """
    border = max(1, round(min(values.shape) * 0.05))
    sides = [values[:border], values[-border:], values[:, :border].T, values[:, -border:].T]
    levels = [float(np.percentile(stretch, 10)) for side in sides for stretch in np.array_split(side, 4, axis=1)]
    low, high = np.percentile(levels, [25, 75])
    return float(high - low) > _UNEVEN_PAPER


def _paper_level(values: np.ndarray) -> np.ndarray:
    """The paper's own level under uneven light, for ink brighter than paper: a morphological opening
    (min, then max) of a 48 px thumbnail removes the strokes and keeps the light (an opening keeps a linear
    ramp of light exactly away from the edges, whatever its window). The window is ~10% of the image, or four
    times the strokes' mean width when they are bolder than that (a thick digit cropped tight): a window narrower
    than a stroke would take the stroke for paper, and where strokes cross or bulge they are wider than their mean
    (twice the mean width left such places as paper)."""
    height, width = values.shape
    scale = _PAPER_THUMBNAIL / max(height, width)
    small = _resize(values, max(5, round(height * scale)), max(5, round(width * scale)))
    # halfway from paper to ink; the lower quartile is paper even when the ink covers most of the picture (a bold
    # digit cropped tight), where the median would be ink, the threshold too high and the strokes measured too thin
    threshold = 0.5 * (float(small.max()) + float(np.percentile(small, 25)))
    stroke = _stroke_width(np.where(small >= threshold, 1.0, 0.0))
    size = max(5, 2 * math.ceil(2.0 * stroke) + 1)
    paper = Image.fromarray(small).filter(ImageFilter.MinFilter(size)).filter(ImageFilter.MaxFilter(size))
    return np.asarray(paper.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _without_clutter(ink: np.ndarray) -> np.ndarray:
    """The ink without what is not the digit: ruled or squared lines that cross the picture, an underline
    below the digit, specks of dust. Works on the connected pieces of ink (8-connected, on the maxima of the
    blocks that bring the picture to at most :data:`_CLUTTER_SIZE` px): the digit is the heaviest piece and the
    pieces close to it."""
    height, width = ink.shape
    factor = math.ceil(max(height, width) / _CLUTTER_SIZE)
    small = _block_max(ink, factor)
    labels, count = _components(small >= _INK_LEVEL * float(small.max()))
    if count <= 1:
        return ink
    index = np.arange(1, count + 1)
    mass = np.bincount(labels.ravel(), weights=small.ravel(), minlength=count + 1)[1:]
    keep = _digit_pieces(_boxes(labels, count), mass, small.shape)
    if keep.all():
        return ink
    kept = np.isin(labels, index[keep])
    kept = np.asarray(Image.fromarray(kept).filter(ImageFilter.MaxFilter(3)))  # the strokes' anti-aliased rims
    full = np.repeat(np.repeat(kept, factor, axis=0), factor, axis=1)[:height, :width]
    return np.where(full, ink, 0.0).astype(np.float32)


def _block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W)`` -> ``(ceil(H / factor), ceil(W / factor))``: the maximum of each ``factor x factor`` block. A line
    thinner than a block keeps its ink (an average would fade a pen's underline below the ink level)."""
    if factor <= 1:
        return values
    rows = np.maximum.reduceat(values, np.arange(0, values.shape[0], factor), axis=0)  # no padded copy
    return np.maximum.reduceat(rows, np.arange(0, values.shape[1], factor), axis=1)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: labels ``(H, W)`` (0 = background, 1..n) and n.

    Every ink pixel starts as its own label (its flat index); each round takes the smallest label in its
    3x3 neighbourhood, then follows labels to their labels (pointer jumping), until nothing changes.
    """
    height, width = mask.shape
    size = height * width
    padded = np.pad(mask, 1)
    flat = np.where(mask, np.arange(size).reshape(height, width), size)  # size: background
    while True:
        grid = np.pad(flat, 1, constant_values=size)
        smallest = flat
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                window = grid[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
                reachable = padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
                smallest = np.minimum(smallest, np.where(reachable, window, size))
        smallest = np.where(mask, smallest, size)
        table = np.append(smallest.ravel(), size)  # label -> that pixel's label
        jumped = table[table[smallest]]
        if np.array_equal(jumped, flat):
            break
        flat = jumped
    roots, labels = np.unique(flat, return_inverse=True)
    labels = labels.reshape(height, width).astype(np.int32)
    if roots[-1] == size:  # background takes the last index: make it 0, the components 1..n
        labels = np.where(flat == size, 0, labels + 1)
        return labels, len(roots) - 1
    return labels + 1, len(roots)


def _boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """The bounding box of each component 1..count: ``(count, 4)`` top, bottom, left, right (exclusive)."""
    rows, cols = np.nonzero(labels)
    which = labels[rows, cols] - 1
    boxes = np.tile(np.array([labels.shape[0], -1, labels.shape[1], -1]), (count, 1))
    np.minimum.at(boxes[:, 0], which, rows)
    np.maximum.at(boxes[:, 1], which, rows + 1)
    np.minimum.at(boxes[:, 2], which, cols)
    np.maximum.at(boxes[:, 3], which, cols + 1)
    return boxes


def _digit_pieces(boxes: np.ndarray, mass: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which pieces ``(n,)`` bool belong to the digit, from their boxes ``(n, 4)`` (top, bottom, left, right)."""
    height, width = shape
    tall, wide = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    # a rule: crosses most of the picture and is thin across
    rule = ((wide >= 0.85 * width) & (tall <= 0.15 * wide)) | ((tall >= 0.85 * height) & (wide <= 0.15 * tall))
    candidates = np.where(rule, 0.0, mass)
    if candidates.max() <= 0:
        return np.ones(len(mass), dtype=bool)
    main = int(candidates.argmax())
    top, bottom, left, right = boxes[main]
    size = max(bottom - top, right - left)
    # distance between boxes (0 when they overlap), in units of the main piece's size
    gap_rows = np.maximum(0, np.maximum(boxes[:, 0] - bottom, top - boxes[:, 1]))
    gap_cols = np.maximum(0, np.maximum(boxes[:, 2] - right, left - boxes[:, 3]))
    near = np.hypot(gap_rows, gap_cols) <= _NEAR * size
    # an underline: a flat bar wholly below the main piece, at least half as wide as it
    underline = (boxes[:, 0] >= bottom) & (tall <= 0.25 * np.maximum(wide, 1)) & (wide >= 0.5 * (right - left))
    speck = mass < _SPECK * mass[main]
    keep = near & ~rule & ~underline & ~(speck & (np.hypot(gap_rows, gap_cols) > 0))
    keep[main] = True
    return keep


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
