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
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.capture import Capture, canvas, encode, pen, photograph, sizes

__all__ = ["CONDITIONS", "FONTS", "Sample", "available_fonts", "generate", "render"]

logger = logging.getLogger(__name__)

FONT_ROOT = Path("/usr/share/fonts")
PNG_SIGNATURE = b"\x89PNG"
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


CONDITIONS: tuple[Capture, ...] = (
    Capture("clean", sizes(120, 400), (0.4, 0.7)),
    Capture("off-centre, small", sizes(300, 600), (0.12, 0.25), centred=False),
    Capture("tight crop, bold", sizes(48, 96), (1.0, 1.0), tight=True, weight=(2, 5), texture=0.0, jpeg=None),
    Capture("coloured pen and paper", sizes(150, 400), (0.35, 0.7), coloured=True),
    Capture("textured paper", sizes(150, 400), (0.3, 0.6), texture=9.0),
    Capture("ruled paper", sizes(200, 450), (0.3, 0.6), ruled="lines"),
    Capture("squared paper", sizes(200, 450), (0.3, 0.6), ruled="squares"),
    Capture("shadow and gradient", sizes(200, 500), (0.3, 0.6), shadow=0.55),
    Capture("blurred", sizes(150, 400), (0.35, 0.6), blur=2.5),
    Capture("heavy JPEG", sizes(150, 400), (0.35, 0.6), jpeg=12),
    Capture("slight perspective", sizes(200, 450), (0.3, 0.55), perspective=0.12),
    # an 8-16 px scan of a pen digit: its strokes a pixel wide there (a thin pen at the drawing size faded out)
    Capture("low-resolution scan", sizes(8, 16), (0.6, 0.85), weight=(1, 3), lowres=True, texture=0.0, jpeg=None),
    Capture("phone photo size", sizes(1500, 3000), (0.15, 0.4), centred=False, texture=4.0, shadow=0.25),
    Capture("specks and underline", sizes(200, 450), (0.3, 0.55), specks=True),
)


def render(rng: np.random.Generator, digit: int, font: Path, capture: Capture, rotation: float) -> bytes:
    """One image: ``digit`` in ``font`` under ``capture``, turned counter-clockwise by ``rotation``; PNG or JPEG
    (the capture simulation is :mod:`bench.capture`'s)."""
    full_size, size = canvas(rng, capture)
    mask = pen(rng, digit, font, capture)
    mask = mask.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=True)  # PIL: counter-clockwise
    return encode(photograph(rng, mask, capture, full_size, size), capture.jpeg)


def generate(out: Path, *, per_cell: int = 8, seed: int = 0) -> list[Sample]:
    """Write the set under ``out`` (images + ``labels.csv``): for every condition, digit and orientation
    (upright or turned), ``per_cell`` images, each with a font drawn at random. 14 x 10 x 2 x 8 = 2,240."""
    fonts = available_fonts()
    if not fonts:
        raise RuntimeError(f"none of the fonts of bench.acceptance_set.FONTS is under {FONT_ROOT}")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
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
