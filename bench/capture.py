"""How a digit on paper becomes the picture a user sends: the capture simulation both generated sets share.

A picture is made in four steps, each drawing from one ``numpy`` generator in a
fixed order (so a seed fixes every pixel):

1. :func:`canvas`: the picture's size;
2. :func:`pen`: the digit as an ink mask, strokes thinned or thickened;
3. the caller shapes the mask (:mod:`bench.acceptance_set` turns it,
   :mod:`bench.training_set` distorts it and never turns it);
4. :func:`photograph`: paper, ink, clutter and the camera or scanner; :func:`encode` writes PNG or JPEG.

What one condition does in steps 1, 2 and 4 is a :class:`Capture`. Every
effect draws from the generator only when the capture asks for it, so a new
effect (``noise``, ``fade``) leaves the pictures of the captures that do not
use it unchanged, byte for byte.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["DRAW_SIDE", "Capture", "canvas", "encode", "glyph", "pen", "photograph", "sizes"]

DRAW_SIDE = 1000  # canvases larger than this are drawn at this size and enlarged at the end


@dataclass(frozen=True)
class Capture:
    """How one condition captures a digit: canvas size, digit size and placement, and the finishing steps."""

    name: str
    canvas: Callable[[np.random.Generator], tuple[int, int]]
    digit_fraction: tuple[float, float]  # digit height / canvas height
    centred: bool = True
    tight: bool = False  # crop to the digit, strokes touching the frame
    weight: tuple[int, int] = (-1, 2)  # stroke thinning/thickening range
    coloured: bool = False
    texture: float = 2.0
    ruled: str | None = None  # "lines" | "squares"
    shadow: float = 0.0
    blur: float = 0.0
    jpeg: int | None = 90
    perspective: float = 0.0
    lowres: bool = False
    specks: bool = False
    noise: float = 0.0  # sensor noise: standard deviation in grey levels (scaled by 0.5-1 per picture)
    fade: float = 0.0  # faint ink (pencil, a dry pen, a pale print): ink moved towards the paper by up to this share


def sizes(low: int, high: int) -> Callable[[np.random.Generator], tuple[int, int]]:
    """Canvas sizes: a side of ``low``-``high`` px, the other side 0.8-1.25 times it."""

    def pick(rng: np.random.Generator) -> tuple[int, int]:
        side = int(rng.integers(low, high + 1))
        return side, int(side * rng.uniform(0.8, 1.25))

    return pick


# -- step 1 and 2: the canvas and the pen ---------------------------------------------------------
def canvas(rng: np.random.Generator, capture: Capture) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(full size, drawing size)`` as ``(width, height)``: the picture's size, and the size it is drawn at
    (at most :data:`DRAW_SIDE` on the long side; phone-photo sizes are enlarged at the end)."""
    width, height = capture.canvas(rng)
    if max(width, height) <= DRAW_SIDE:
        return (width, height), (width, height)
    scale = DRAW_SIDE / max(width, height)
    return (width, height), (round(width * scale), round(height * scale))


def pen(rng: np.random.Generator, digit: int, font: Path, capture: Capture) -> Image.Image:
    """The digit as an upright ``L`` ink mask (255 = ink), strokes thinned or thickened within ``capture.weight``."""
    work_height = 160 if not capture.lowres else 96
    return glyph(digit, font, work_height, int(rng.integers(capture.weight[0], capture.weight[1] + 1)))


@functools.lru_cache(maxsize=256)
def _face(font: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font), size=size)


def glyph(digit: int, font: Path, height: int, weight: int) -> Image.Image:
    """The digit as an ``L`` mask (255 = ink), cropped to its ink, about ``height`` px tall.

    ``weight`` > 0 thickens the strokes by that many px (a bold marker), < 0 thins them (a fine pen).
    """
    face = _face(font, int(height * 1.4))
    canvas = Image.new("L", (int(height * 2.2), int(height * 2.2)), 0)
    ImageDraw.Draw(canvas).text((height * 0.3, height * 0.1), str(digit), fill=255, font=face)
    for _ in range(abs(weight)):
        canvas = canvas.filter(ImageFilter.MaxFilter(3) if weight > 0 else ImageFilter.MinFilter(3))
    box = canvas.getbbox()
    if box is None:  # thinned away: draw it again without thinning
        return glyph(digit, font, height, 0)
    return canvas.crop(box)


# -- step 4: paper, ink and the camera -------------------------------------------------------------
def photograph(
    rng: np.random.Generator, mask: Image.Image, capture: Capture, full_size: tuple[int, int], size: tuple[int, int]
) -> Image.Image:
    """The ink ``mask`` laid on paper and captured as ``capture`` says: an RGB (or, scanned, ``L``) picture.

    ``full_size`` and ``size`` come from :func:`canvas`; a tight crop and a low-resolution scan take their
    size from the digit instead."""
    width, height = size
    ink, paper_colour = _colours(rng, capture)
    if capture.tight or capture.lowres:
        mask = _scaled(mask, height / max(mask.size) * (1.0 if capture.tight else rng.uniform(*capture.digit_fraction)))
        if capture.tight:
            width, height = mask.size
    else:
        mask = _scaled(mask, height * rng.uniform(*capture.digit_fraction) / mask.height)
    paper = _paper(rng, (width, height), paper_colour, capture.texture)
    if capture.ruled:
        _lines(paper, rng, max(6, height // int(rng.integers(6, 12))), capture.ruled == "squares")
    if capture.centred or capture.tight:
        left, top = (width - mask.width) // 2, (height - mask.height) // 2
    else:
        left = int(rng.integers(0, max(1, width - mask.width)))
        top = int(rng.integers(0, max(1, height - mask.height)))
    if capture.specks:
        underline_y = min(height - 2, top + mask.height + int(height * 0.05))
        paper[underline_y : underline_y + max(2, height // 80), left : left + mask.width] = ink
        _specks(paper, rng, ink)
    image = _compose(paper, mask, left, top, ink)
    if capture.shadow:
        image = _shadow(image, rng, capture.shadow * rng.uniform(0.6, 1.0))
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    if capture.perspective:
        picture = _perspective(picture, rng, capture.perspective)
    if capture.blur:
        picture = picture.filter(ImageFilter.GaussianBlur(capture.blur * rng.uniform(0.5, 1.0)))
    if capture.noise:
        picture = _noise(picture, rng, capture.noise * rng.uniform(0.5, 1.0))
    if picture.size != full_size and not capture.tight:
        picture = picture.resize(full_size, Image.Resampling.BICUBIC)
    if capture.lowres:  # scanned tiny, then enlarged by whoever sends it
        factor = int(rng.integers(4, 10))
        picture = picture.convert("L").resize((width * factor, height * factor), Image.Resampling.NEAREST)
    return picture


def encode(picture: Image.Image, jpeg: int | None) -> bytes:
    """The picture as JPEG of quality ``jpeg``, or as PNG when ``jpeg`` is None."""
    buffer = io.BytesIO()
    if jpeg is not None:
        picture.save(buffer, "JPEG", quality=jpeg)
    else:
        picture.save(buffer, "PNG")
    return buffer.getvalue()


def _scaled(mask: Image.Image, scale: float) -> Image.Image:
    size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
    return mask.resize(size, Image.Resampling.LANCZOS)


def _colours(rng: np.random.Generator, capture: Capture) -> tuple[np.ndarray, np.ndarray]:
    """``(ink, paper)`` RGB colours: dark ink on off-white paper, coloured pens and paper, faded ink."""
    ink = np.array([20.0, 22.0, 30.0]) + rng.uniform(0, 35)
    paper = np.array([242.0, 240.0, 233.0]) - rng.uniform(0, 18)
    if capture.coloured:
        ink = rng.choice([[25.0, 45.0, 160.0], [170.0, 30.0, 35.0], [30.0, 110.0, 50.0], [90.0, 40.0, 130.0]])
        paper = rng.choice([[250.0, 235.0, 150.0], [200.0, 225.0, 245.0], [240.0, 205.0, 215.0], [230.0] * 3])
    if capture.fade:
        ink = ink + (paper - ink) * rng.uniform(0, capture.fade)
    return ink, paper


def _paper(rng: np.random.Generator, size: tuple[int, int], colour: np.ndarray, texture: float) -> np.ndarray:
    """``(H, W, 3)`` float paper with grain of ``texture`` grey levels."""
    width, height = size
    paper = np.ones((height, width, 3)) * colour
    if texture > 0:
        grain = rng.normal(0, texture, (height // 2 + 1, width // 2 + 1, 1))
        paper = paper + np.kron(grain, np.ones((2, 2, 1)))[:height, :width]  # 2 px grain, like fibres
    return paper


def _lines(paper: np.ndarray, rng: np.random.Generator, spacing: int, squared: bool) -> None:
    """Ruled (or squared) paper: thin blue-grey lines every ``spacing`` px, in place."""
    colour = np.array([150.0, 170.0, 205.0])
    offset = int(rng.integers(0, spacing))
    paper[offset::spacing, :] = paper[offset::spacing, :] * 0.45 + colour * 0.55
    if squared:
        paper[:, offset::spacing] = paper[:, offset::spacing] * 0.45 + colour * 0.55


def _compose(paper: np.ndarray, mask: Image.Image, left: int, top: int, ink: np.ndarray) -> np.ndarray:
    """Ink laid on paper through an ``L`` mask placed at ``(left, top)`` (clipped at the edges)."""
    alpha = np.zeros(paper.shape[:2])
    height, width = paper.shape[:2]
    m = np.asarray(mask, dtype=np.float64) / 255.0
    top0, left0 = max(top, 0), max(left, 0)
    bottom, right = min(top + m.shape[0], height), min(left + m.shape[1], width)
    if bottom > top0 and right > left0:
        alpha[top0:bottom, left0:right] = m[top0 - top : bottom - top, left0 - left : right - left]
    return paper * (1 - alpha[..., None]) + ink * alpha[..., None]


def _shadow(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A light gradient across the sheet, darker towards one side (a hand or phone shadow)."""
    height, width = image.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1) / 2  # 0..1
    return image * (1 - strength * ramp[..., None])


def _perspective(image: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """A slight keystone: the corners moved inwards by up to ``amount`` of the size."""
    width, height = image.size
    jitter = rng.uniform(0, amount, 8) * np.array([width, height] * 4)
    quad = (
        jitter[0],
        jitter[1],
        jitter[2],
        height - jitter[3],
        width - jitter[4],
        height - jitter[5],
        width - jitter[6],
        jitter[7],
    )
    return image.transform(image.size, Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)


def _noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Gaussian sensor noise of ``sigma`` grey levels, independent per pixel and channel."""
    pixels = np.asarray(image, dtype=np.float64)
    noisy = pixels + rng.normal(0, sigma, pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def _specks(image: np.ndarray, rng: np.random.Generator, ink: np.ndarray) -> None:
    """Dust specks and a pen underline below the digit area, in place."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(3, 9))):
        y, x, r = int(rng.integers(0, height)), int(rng.integers(0, width)), int(rng.integers(1, 3))
        image[max(0, y - r) : y + r, max(0, x - r) : x + r] = ink
