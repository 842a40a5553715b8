"""A realistic acceptance set: digits as people photograph, scan and draw them (not MNIST).

    python -m bench.acceptance_set --out data/acceptance          # 2,240 images + labels.csv, seed 0

Every image is one digit drawn with a font from Debian's font packages
(:data:`FONTS`, installed by ``scripts/install_system_deps.sh``): handwriting-like
faces and ordinary type, strokes made thinner or bolder, then captured the way a
user would send it under one :data:`CONDITIONS`: scale and position, pen and
paper colour, paper texture, ruled and squared paper, shadows and light
gradients, blur, heavy JPEG, slight perspective, tight crops that touch the
edges, low-resolution scans, phone-photo sizes, specks and underlines. Half of
the digits are upright with a small tilt (up to 10 degrees either way), half
turned by an arbitrary angle; ``labels.csv`` records the file, the digit, the
condition, the font, the style and the true counter-clockwise rotation.

Deterministic: the same seed and fonts give the same images (PNG bytes may
differ across Pillow versions). The images are not committed; the evaluation
(:mod:`bench.acceptance`) regenerates them.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["CONDITIONS", "FONTS", "Sample", "available_fonts", "generate", "render"]

logger = logging.getLogger(__name__)

FONT_ROOT = Path("/usr/share/fonts")
PNG_SIGNATURE = b"\x89PNG"
_DRAW_SIDE = 1000
# (Debian package, file under /usr/share/fonts, style): the faces digits are drawn with.
FONTS: tuple[tuple[str, str, str], ...] = (
    ("fonts-comic-neue", "opentype/comic-neue/ComicNeue-Regular.otf", "handwriting"),
    ("fonts-comic-neue", "opentype/comic-neue/ComicNeue-Bold.otf", "handwriting"),
    ("fonts-humor-sans", "truetype/humor-sans/Humor-Sans.ttf", "handwriting"),
    ("fonts-dkg-handwriting", "truetype/fifthhorseman/dkg.ttf", "handwriting"),
    ("fonts-breip", "truetype/breip/Breip.ttf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeBuild-Regular.otf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeConnect-Regular.otf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeCreate-Regular.otf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeLearn-Regular.otf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeMentor-Regular.otf", "handwriting"),
    ("fonts-bwht", "opentype/bwht/BecauseWeOrganize-Regular.otf", "handwriting"),
    ("fonts-femkeklaver", "truetype/femkeklaver/femkeklaver.ttf", "handwriting"),
    ("fonts-dancingscript", "opentype/dancingscript/DancingScript-Regular.otf", "handwriting"),
    ("fonts-dejavu-core", "truetype/dejavu/DejaVuSans.ttf", "type"),
    ("fonts-dejavu-core", "truetype/dejavu/DejaVuSerif.ttf", "type"),
    ("fonts-liberation", "truetype/liberation/LiberationSans-Regular.ttf", "type"),
    ("fonts-liberation", "truetype/liberation/LiberationSerif-Regular.ttf", "type"),
    ("fonts-liberation", "truetype/liberation/LiberationMono-Regular.ttf", "type"),
    ("fonts-freefont-ttf", "truetype/freefont/FreeSans.ttf", "type"),
    ("fonts-urw-base35", "opentype/urw-base35/NimbusSans-Regular.otf", "type"),
    ("fonts-urw-base35", "opentype/urw-base35/URWGothic-Book.otf", "type"),
    ("fonts-urw-base35", "opentype/urw-base35/URWBookman-Light.otf", "type"),
    ("fonts-go", "fonts-go/Go-Regular.ttf", "type"),
    ("fonts-ebgaramond", "opentype/ebgaramond/EBGaramond12-Regular.otf", "type"),
)


@dataclass(frozen=True)
class Sample:
    """One image of the set and what is true about it."""

    file: str
    digit: int
    condition: str
    font: str
    style: str
    rotation: float  # degrees, counter-clockwise, in [0, 360)
    turned: bool  # arbitrary rotation (True) or upright with a small tilt (False)


def available_fonts() -> list[tuple[str, Path, str]]:
    """The fonts of :data:`FONTS` installed on this machine: ``(package, path, style)``."""
    return [(package, FONT_ROOT / path, style) for package, path, style in FONTS if (FONT_ROOT / path).is_file()]


# -- drawing the digit ----------------------------------------------------------------------------
def glyph(digit: int, font: Path, height: int, weight: int) -> Image.Image:
    """The digit as an ``L`` mask (255 = ink), cropped to its ink, about ``height`` px tall.

    ``weight`` > 0 thickens the strokes by that many px (a bold marker), < 0 thins them (a fine pen).
    """
    face = ImageFont.truetype(str(font), size=int(height * 1.4))
    canvas = Image.new("L", (int(height * 2.2), int(height * 2.2)), 0)
    ImageDraw.Draw(canvas).text((height * 0.3, height * 0.1), str(digit), fill=255, font=face)
    for _ in range(abs(weight)):
        canvas = canvas.filter(ImageFilter.MaxFilter(3) if weight > 0 else ImageFilter.MinFilter(3))
    box = canvas.getbbox()
    if box is None:  # thinned away: draw it again without thinning
        return glyph(digit, font, height, 0)
    return canvas.crop(box)


def _paper(rng: np.random.Generator, size: tuple[int, int], colour: np.ndarray, texture: float) -> np.ndarray:
    """``(H, W, 3)`` float paper with grain of ``texture`` grey levels."""
    width, height = size
    paper = np.ones((height, width, 3)) * colour
    if texture > 0:
        grain = rng.normal(0, texture, (height // 2 + 1, width // 2 + 1, 1))
        grain = np.kron(grain, np.ones((2, 2, 1)))[:height, :width]  # 2 px grain, like fibres
        paper = paper + grain
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


def _specks(image: np.ndarray, rng: np.random.Generator, ink: np.ndarray) -> None:
    """Dust specks and a pen underline below the digit area, in place."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(3, 9))):
        y, x, r = int(rng.integers(0, height)), int(rng.integers(0, width)), int(rng.integers(1, 3))
        image[max(0, y - r) : y + r, max(0, x - r) : x + r] = ink


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


def _size(low: int, high: int) -> Callable[[np.random.Generator], tuple[int, int]]:
    def pick(rng: np.random.Generator) -> tuple[int, int]:
        side = int(rng.integers(low, high + 1))
        return side, int(side * rng.uniform(0.8, 1.25))

    return pick


CONDITIONS: tuple[Capture, ...] = (
    Capture("clean", _size(120, 400), (0.4, 0.7)),
    Capture("off-centre, small", _size(300, 600), (0.12, 0.25), centred=False),
    Capture("tight crop, bold", _size(48, 96), (1.0, 1.0), tight=True, weight=(2, 5), texture=0.0, jpeg=None),
    Capture("coloured pen and paper", _size(150, 400), (0.35, 0.7), coloured=True),
    Capture("textured paper", _size(150, 400), (0.3, 0.6), texture=9.0),
    Capture("ruled paper", _size(200, 450), (0.3, 0.6), ruled="lines"),
    Capture("squared paper", _size(200, 450), (0.3, 0.6), ruled="squares"),
    Capture("shadow and gradient", _size(200, 500), (0.3, 0.6), shadow=0.55),
    Capture("blurred", _size(150, 400), (0.35, 0.6), blur=2.5),
    Capture("heavy JPEG", _size(150, 400), (0.35, 0.6), jpeg=12),
    Capture("slight perspective", _size(200, 450), (0.3, 0.55), perspective=0.12),
    # an 8-16 px scan of a pen digit: its strokes a pixel wide there (a thin pen at the drawing size faded out)
    Capture("low-resolution scan", _size(8, 16), (0.6, 0.85), weight=(1, 3), lowres=True, texture=0.0, jpeg=None),
    Capture("phone photo size", _size(1500, 3000), (0.15, 0.4), centred=False, texture=4.0, shadow=0.25),
    Capture("specks and underline", _size(200, 450), (0.3, 0.55), specks=True),
)


def render(rng: np.random.Generator, digit: int, font: Path, capture: Capture, rotation: float) -> bytes:
    """One image: ``digit`` in ``font`` under ``capture``, turned counter-clockwise by ``rotation``; PNG or JPEG.

    Canvases over :data:`_DRAW_SIDE` px (phone-photo sizes) are drawn at that size and enlarged at the end,
    as a phone's optics and processing leave them: smooth at the pixel level."""
    width, height = capture.canvas(rng)
    full_size = (width, height)
    if max(width, height) > _DRAW_SIDE:
        scale = _DRAW_SIDE / max(width, height)
        width, height = round(width * scale), round(height * scale)
    work_height = 160 if not capture.lowres else 96
    mask = glyph(digit, font, work_height, int(rng.integers(capture.weight[0], capture.weight[1] + 1)))
    mask = mask.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=True)  # PIL: counter-clockwise
    ink = np.array([20.0, 22.0, 30.0]) + rng.uniform(0, 35)
    paper_colour = np.array([242.0, 240.0, 233.0]) - rng.uniform(0, 18)
    if capture.coloured:
        ink = rng.choice([[25.0, 45.0, 160.0], [170.0, 30.0, 35.0], [30.0, 110.0, 50.0], [90.0, 40.0, 130.0]])
        paper_colour = rng.choice([[250.0, 235.0, 150.0], [200.0, 225.0, 245.0], [240.0, 205.0, 215.0], [230.0] * 3])
    if capture.tight or capture.lowres:
        scale = height / max(mask.size) * (1.0 if capture.tight else rng.uniform(*capture.digit_fraction))
        mask = mask.resize((max(1, round(mask.width * scale)), max(1, round(mask.height * scale))), Image.LANCZOS)
        if capture.tight:
            width, height = mask.size
    else:
        scale = height * rng.uniform(*capture.digit_fraction) / mask.height
        mask = mask.resize((max(1, round(mask.width * scale)), max(1, round(mask.height * scale))), Image.LANCZOS)
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
    if picture.size != full_size and not capture.tight:
        picture = picture.resize(full_size, Image.Resampling.BICUBIC)
    if capture.lowres:  # scanned tiny, then enlarged by whoever sends it
        factor = int(rng.integers(4, 10))
        picture = picture.convert("L").resize((width * factor, height * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    if capture.jpeg is not None:
        picture.save(buffer, "JPEG", quality=capture.jpeg)
    else:
        picture.save(buffer, "PNG")
    return buffer.getvalue()


def generate(out: Path, *, per_cell: int = 8, seed: int = 0) -> list[Sample]:
    """Write the set under ``out`` (images + ``labels.csv``): for every condition, digit and orientation
    (upright or turned), ``per_cell`` images, each with a font drawn at random. 14 x 10 x 2 x 8 = 2,240."""
    fonts = available_fonts()
    if not fonts:
        raise RuntimeError(f"none of the fonts of bench.acceptance_set.FONTS is under {FONT_ROOT}")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for capture in CONDITIONS:
        for digit in range(10):
            for turned in (False, True):
                for _ in range(per_cell):
                    _, path, style = fonts[int(rng.integers(len(fonts)))]
                    rotation = float(rng.uniform(0, 360) if turned else rng.uniform(-10, 10) % 360)
                    data = render(rng, digit, path, capture, rotation)
                    name = f"{len(samples):05d}.{'png' if data.startswith(PNG_SIGNATURE) else 'jpg'}"
                    (out / name).write_bytes(data)
                    samples.append(Sample(name, digit, capture.name, path.stem, style, round(rotation, 3), turned))
    with (out / "labels.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "digit", "condition", "font", "style", "rotation", "turned"])
        for s in samples:
            writer.writerow([s.file, s.digit, s.condition, s.font, s.style, s.rotation, int(s.turned)])
    logger.info("wrote %d images and labels.csv to %s (%d fonts)", len(samples), out, len(fonts))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/acceptance"))
    parser.add_argument("--per-cell", type=int, default=8, help="images per (condition, digit, upright/turned)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generate(args.out, per_cell=args.per_cell, seed=args.seed)


if __name__ == "__main__":
    main()
