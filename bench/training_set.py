"""Synthetic upright training digits: font digits captured as photos and scans, preprocessed as the service does.

    python -m bench.training_set --out data/synthetic_digits.safetensors --count 30000 --seed 0
    python -m bench.training_set --out data/synthetic_digits.safetensors --describe   # what a file holds

Every image is one digit drawn with a face of :data:`FONTS` (Debian packages
that issue 18 allows for training, installed by ``scripts/install_system_deps.sh``;
never a face of :mod:`bench.acceptance_set`, which stays evaluation-only, nor the
same design under another name), strokes thinned or thickened, a share of the
glyphs drawn hollow as outline lettering (:func:`hollow`, ``--hollow``), squeezed or
stretched sideways and elastically distorted, then captured under one of
:data:`CONDITIONS` by :mod:`bench.capture` (the acceptance set's simulation:
scale and position, paper and ink levels, coloured pens, texture, ruled and
squared paper, shadows, blur, sensor noise, heavy JPEG, 8-16 px scans, specks and
underlines). **No image is ever rotated**: a face's own slant and italics are the
only tilt, so a model trained on this set (with upright MNIST) is still "trained
upright". Each picture is then encoded (PNG or JPEG) and turned into the 28x28
input by :func:`app.pictures.decoding.model_input`, the very function the service runs on
an upload (default ``preprocess=auto``), and stored as ``uint8``.

The set is balanced: digit ``i % 10`` for image ``i``, the faces in turn within a
digit, each face under every condition in turn. Image ``i`` draws from its own
generator, seeded by ``(seed, i)``, so the set is the same whatever the number of
worker processes. A picture the service would refuse as blank (``no-ink``), or
whose digit its preprocessing lost (:func:`agreement`), is drawn again from the
same generator: its label would be wrong for what the model sees. The file
records how many were, per condition.

Output: one safetensors file with ``images`` ``(N, 28, 28)`` uint8 (ink bright,
like MNIST), ``labels`` ``(N,)`` int64, ``font_index`` and ``condition_index``
``(N,)`` int64, ``hollow`` ``(N,)`` uint8 (1 where the glyph was drawn hollow), and
metadata (JSON strings): ``seed``, ``count``, ``hollow_share``, ``fonts``,
``conditions``, ``per_digit``, ``per_font``, ``redrawn``. Read it with
:func:`model.data.load_synthetic`; ``python -m model.train --synthetic PATH``
trains on it mixed with MNIST.

Lives in ``bench/`` next to the acceptance set because it shares that set's
capture simulation and font hygiene, and because it imports the service's
preprocessing: ``model/`` never imports ``app/``, so ``model.data`` only reads
the file.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageFont, ImageOps
from safetensors import safe_open
from safetensors.numpy import save

from app.errors import NoInkError
from app.pictures.decoding import model_input
from app.pictures.preprocessing import PreprocessMode, mnist_normalise
from app.settings import Settings
from bench import acceptance_set
from bench.capture import Capture, canvas, encode, pen, photograph, sizes

__all__ = ["CONDITIONS", "FONTS", "Face", "available_fonts", "check_disjoint", "distort", "generate", "render"]

logger = logging.getLogger(__name__)

SHARE = Path("/usr/share")
FORMAT = "equivariant-digits/synthetic-digits/1"
MAX_PIXELS = int(Settings.model_fields["max_pixels"].default)  # the service's default pixel limit
MAX_REDRAWS = 20
MIN_AGREEMENT = 0.5  # measured: a digit the service found scores >= 0.53, one it lost mostly < 0.45
ASPECT = (0.75, 1.33)  # width multiplied by this range (log-uniform): condensed to extended
ELASTIC = 0.05  # largest elastic displacement, as a share of the glyph's larger side
HOLLOW = 0.1  # default share of glyphs drawn hollow (outline or bubble lettering)
HOLLOW_BOLDEN = (3, 10)  # px the strokes are thickened by before the inside is taken out (160 px drawing)
HOLLOW_LINE = (2, 5)  # px: width of the outline that is left (160 px drawing)
_ELASTIC_GRID = 5  # control points per side of the smooth random displacement field

# (Debian package, file under /usr/share, style). One or a few faces per design, chosen to differ:
# the TeX Gyre and Latin Modern packages hold dozens of near-copies (optical sizes, weights).
# Left out on purpose, though allowed by package: TeX Gyre Adventor, Bonum and Heros (Heros Cn) are
# URW Gothic, URW Bookman and Nimbus Sans (faces of the acceptance set) under other names;
# fonts-levien-typoscript's TypoScript has no digits (it draws its missing-glyph box).
FONTS: tuple[tuple[str, str, str], ...] = (
    ("fonts-kaushanscript", "fonts/opentype/kaushanscript/KaushanScript-Regular.otf", "handwriting"),
    ("fonts-kristi", "fonts/truetype/kristi/Kristi.ttf", "handwriting"),
    ("fonts-lobster", "fonts/opentype/lobster/lobster.otf", "handwriting"),
    ("fonts-sjfonts", "fonts/truetype/sjfonts/Delphine.ttf", "handwriting"),
    ("fonts-sjfonts", "fonts/truetype/sjfonts/SteveHand.ttf", "handwriting"),
    ("fonts-tomsontalks", "fonts/truetype/tomsontalks/TomsonTalks.ttf", "handwriting"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyrechorus-mediumitalic.otf", "handwriting"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyrecursor-regular.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyrecursor-bold.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyrepagella-regular.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyrepagella-italic.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyreschola-regular.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyreschola-bold.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyretermes-regular.otf", "type"),
    ("fonts-texgyre", "texmf/fonts/opentype/public/tex-gyre/texgyretermes-italic.otf", "type"),
    ("fonts-open-sans", "fonts/truetype/open-sans/OpenSans-Regular.ttf", "type"),
    ("fonts-open-sans", "fonts/truetype/open-sans/OpenSans-Italic.ttf", "type"),
    ("fonts-open-sans", "fonts/truetype/open-sans/OpenSans-Bold.ttf", "type"),
    ("fonts-open-sans", "fonts/truetype/open-sans/OpenSans-Light.ttf", "type"),
    ("fonts-open-sans", "fonts/truetype/open-sans/OpenSans-CondBold.ttf", "type"),
    ("fonts-roboto-fontface", "fonts/truetype/roboto-fontface/roboto/Roboto-Regular.ttf", "type"),
    ("fonts-roboto-fontface", "fonts/truetype/roboto-fontface/roboto/Roboto-RegularItalic.ttf", "type"),
    ("fonts-roboto-fontface", "fonts/truetype/roboto-fontface/roboto/Roboto-Black.ttf", "type"),
    ("fonts-roboto-fontface", "fonts/truetype/roboto-fontface/roboto/Roboto-Thin.ttf", "type"),
    ("fonts-roboto-fontface", "fonts/truetype/roboto-fontface/roboto-condensed/Roboto-Condensed-Light.ttf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmroman10-regular.otf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmroman10-italic.otf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmroman10-bold.otf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmsans10-regular.otf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmmono10-regular.otf", "type"),
    ("fonts-lmodern", "texmf/fonts/opentype/public/lm/lmromandunh10-regular.otf", "type"),
    ("fonts-sil-charis", "fonts/truetype/charis/CharisSIL-Regular.ttf", "type"),
    ("fonts-sil-charis", "fonts/truetype/charis/CharisSIL-Italic.ttf", "type"),
    ("fonts-sil-charis", "fonts/truetype/charis/CharisSIL-Bold.ttf", "type"),
    ("fonts-sil-charis", "fonts/truetype/charis/CharisSIL-BoldItalic.ttf", "type"),
    ("fonts-hack", "fonts/truetype/hack/Hack-Regular.ttf", "type"),
    ("fonts-hack", "fonts/truetype/hack/Hack-BoldItalic.ttf", "type"),
    ("fonts-noto-mono", "fonts/truetype/noto/NotoSansMono-Regular.ttf", "type"),
    ("fonts-noto-mono", "fonts/truetype/noto/NotoSansMono-Bold.ttf", "type"),
)
# Families that are an acceptance face's design under another name: never trained on.
SAME_DESIGN_AS_ACCEPTANCE = {
    "TeX Gyre Adventor": "URW Gothic",
    "TeX Gyre Bonum": "URW Bookman",
    "TeX Gyre Heros": "Nimbus Sans",
    "TeX Gyre Heros Cn": "Nimbus Sans",
}

# Modelled on the acceptance set's conditions with other ranges, plus sensor noise and faint ink; without
# its slight perspective (a keystone tilts strokes) and its phone-photo sizes (the service shrinks those
# on decoding, and "off-centre, small" already puts a small digit in a large frame).
CONDITIONS: tuple[Capture, ...] = (
    Capture("clean", sizes(60, 360), (0.4, 0.8)),
    Capture("off-centre, small", sizes(240, 600), (0.12, 0.3), centred=False),
    Capture("tight crop, bold", sizes(40, 110), (1.0, 1.0), tight=True, weight=(1, 5), texture=0.0, jpeg=None),
    Capture("fine pen", sizes(150, 450), (0.35, 0.75), weight=(-2, 0)),
    Capture("coloured pen and paper", sizes(120, 400), (0.35, 0.75), coloured=True),
    Capture("textured paper", sizes(120, 400), (0.3, 0.65), texture=10.0),
    Capture("ruled paper", sizes(160, 450), (0.3, 0.65), ruled="lines"),
    Capture("squared paper", sizes(160, 450), (0.3, 0.65), ruled="squares"),
    Capture("shadow and gradient", sizes(160, 500), (0.3, 0.65), shadow=0.6),
    Capture("blurred", sizes(120, 400), (0.35, 0.65), blur=3.0),
    Capture("sensor noise", sizes(120, 400), (0.35, 0.7), texture=0.0, noise=24.0),
    Capture("faint ink", sizes(120, 400), (0.35, 0.7), fade=0.75),
    Capture("heavy JPEG", sizes(120, 400), (0.35, 0.65), jpeg=15),
    Capture("low-resolution scan", sizes(8, 16), (0.6, 0.9), weight=(0, 3), lowres=True, texture=0.0, jpeg=None),
    Capture("specks and underline", sizes(160, 450), (0.3, 0.6), specks=True),
)


@dataclass(frozen=True)
class Face:
    """One training face: its package, file and style, and the family name the file declares."""

    package: str
    path: Path
    style: str
    family: str


def _family(path: Path) -> str:
    return str(ImageFont.truetype(str(path), size=12).getname()[0])


def available_fonts() -> list[Face]:
    """The faces of :data:`FONTS` installed on this machine."""
    return [
        Face(package, SHARE / path, style, _family(SHARE / path))
        for package, path, style in FONTS
        if (SHARE / path).is_file()
    ]


def check_disjoint(faces: Iterable[Face]) -> None:
    """Refuse a face that the acceptance set uses (same file, same family, or the same design renamed).

    Raises:
        ValueError: naming the faces that overlap.
    """
    acceptance = acceptance_set.available_fonts()
    files = {path.resolve() for _, path, _ in acceptance}
    families = {_family(path) for _, path, _ in acceptance}
    overlap = [
        face.path.name
        for face in faces
        if face.path.resolve() in files or face.family in families or face.family in SAME_DESIGN_AS_ACCEPTANCE
    ]
    if overlap:
        raise ValueError(f"training faces {overlap} are acceptance-set faces: they must stay evaluation-only")


# -- one picture ----------------------------------------------------------------------------------
def distort(rng: np.random.Generator, mask: Image.Image) -> Image.Image:
    """The ink mask squeezed or stretched sideways (:data:`ASPECT`) and elastically distorted (up to
    :data:`ELASTIC`). Never a rotation: the elastic field's affine part (which holds any rotation,
    shear or scaling of the whole digit) is removed, leaving only local wobble."""
    aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
    mask = mask.resize((max(1, round(mask.width * aspect)), mask.height), Image.Resampling.LANCZOS)
    return _elastic(mask, rng, rng.uniform(0, ELASTIC) * max(mask.size))


def hollow(rng: np.random.Generator, mask: Image.Image) -> Image.Image:
    """The glyph drawn as its own outline, as outline or bubble lettering draws a digit: strokes thickened
    by :data:`HOLLOW_BOLDEN`, then everything but a line of :data:`HOLLOW_LINE` along the edge taken out
    (both scaled from a 160 px drawing to the mask's height). A stroke too thin to hold an inside stays solid."""
    scale = mask.height / 160
    bolden = max(1, round(scale * rng.integers(HOLLOW_BOLDEN[0], HOLLOW_BOLDEN[1] + 1)))
    line = max(1, round(scale * rng.integers(HOLLOW_LINE[0], HOLLOW_LINE[1] + 1)))
    outer = ImageOps.expand(mask, bolden + 1, fill=0)
    for _ in range(bolden):
        outer = outer.filter(ImageFilter.MaxFilter(3))
    inner = outer
    for _ in range(line):
        inner = inner.filter(ImageFilter.MinFilter(3))
    outline = ImageChops.subtract(outer, inner)
    box = outline.getbbox()
    return outline.crop(box) if box is not None else mask


def _elastic(mask: Image.Image, rng: np.random.Generator, amplitude: float) -> Image.Image:
    """``mask`` resampled along a smooth random displacement field of at most ``amplitude`` px."""
    margin = math.ceil(amplitude) + 1
    ink = np.pad(np.asarray(mask, dtype=np.float32), margin)  # (H, W): room for ink that moves out
    height, width = ink.shape
    coarse = rng.normal(0.0, 1.0, (2, _ELASTIC_GRID, _ELASTIC_GRID)).astype(np.float32)
    field = np.stack(
        [np.asarray(Image.fromarray(c).resize((width, height), Image.Resampling.BICUBIC)) for c in coarse]
    )  # (2, H, W): row and column displacement
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    design = np.stack([rows.ravel(), cols.ravel(), np.ones(rows.size, dtype=np.float32)], axis=1)  # (HW, 3)
    for component in field:  # remove the least-squares affine part: no global turn, shear or scale
        coefficients, *_ = np.linalg.lstsq(design, component.ravel(), rcond=None)
        component -= (design @ coefficients).reshape(height, width)
    peak = float(np.abs(field).max())
    if peak > 0:
        field *= amplitude / peak
    warped = _bilinear(ink, rows + field[0], cols + field[1])
    image = Image.fromarray(np.clip(np.rint(warped), 0, 255).astype(np.uint8))
    box = image.getbbox()
    return image.crop(box) if box is not None else mask


def _bilinear(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``values`` ``(H, W)`` sampled at fractional ``(rows, cols)``, clamped at the edges."""
    height, width = values.shape
    rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
    top, left = np.floor(rows).astype(np.intp), np.floor(cols).astype(np.intp)
    bottom, right = np.minimum(top + 1, height - 1), np.minimum(left + 1, width - 1)
    dy, dx = rows - top, cols - left
    upper = values[top, left] * (1 - dx) + values[top, right] * dx
    lower = values[bottom, left] * (1 - dx) + values[bottom, right] * dx
    return upper * (1 - dy) + lower * dy


@dataclass(frozen=True)
class Picture:
    """One generated picture (PNG or JPEG bytes) and the upright ink mask it shows."""

    data: bytes
    ink: Image.Image
    hollow: bool = False


def render(rng: np.random.Generator, digit: int, font: Path, capture: Capture, hollow_share: float = 0.0) -> Picture:
    """One upright picture of ``digit`` in ``font`` under ``capture``, drawn :func:`hollow` with probability
    ``hollow_share`` (0 draws no random number for it, so older sets are made again image for image)."""
    full_size, size = canvas(rng, capture)
    mask = pen(rng, digit, font, capture)
    drawn_hollow = hollow_share > 0 and rng.uniform() < hollow_share
    if drawn_hollow:
        mask = hollow(rng, mask)
    mask = distort(rng, mask)
    return Picture(encode(photograph(rng, mask, capture, full_size, size), capture.jpeg), mask, drawn_hollow)


def agreement(pixels: np.ndarray, ink: Image.Image) -> float:
    """Correlation of the service's ``(28, 28)`` input with the same preprocessing of the bare ink mask
    (light ink on black, padded): about 1 when the service found the digit, near 0 when it kept something else."""
    mask = np.asarray(ink)
    reference = mnist_normalise(np.pad(mask, max(mask.shape) // 5))
    return float(np.corrcoef(pixels.ravel(), reference.ravel())[0, 1])


def _make(job: tuple[int, int, str, int], seed: int, hollow_share: float) -> tuple[int, np.ndarray, Counter[str], bool]:
    """``(index, 28x28 uint8 input, pictures redrawn by cause, drawn hollow)`` for one
    ``(index, digit, font, condition)`` job.

    A picture is drawn again (from the same generator) when the service would refuse it as blank
    (``no-ink``) or its preprocessing lost the digit (:func:`agreement` under :data:`MIN_AGREEMENT`:
    a tight, bold crop read as paper, a shadow or an underline kept instead of the digit): its label
    would be wrong for what the model sees."""
    index, digit, font, condition = job
    rng = np.random.default_rng([seed, index])
    redrawn: Counter[str] = Counter()
    for _ in range(MAX_REDRAWS):
        picture = render(rng, digit, Path(font), CONDITIONS[condition], hollow_share)
        try:
            pixels = model_input(picture.data, MAX_PIXELS, PreprocessMode.AUTO)  # (28, 28) float32 in [0, 1]
        except NoInkError:
            redrawn["no-ink"] += 1
            continue
        if agreement(pixels, picture.ink) < MIN_AGREEMENT:
            redrawn["digit lost"] += 1
            continue
        return index, np.rint(pixels * 255.0).astype(np.uint8), redrawn, picture.hollow
    raise RuntimeError(f"image {index}: {MAX_REDRAWS} pictures in a row lost their digit in preprocessing")


# -- the set ----------------------------------------------------------------------------------------
def plan(count: int, fonts: int) -> list[tuple[int, int, int, int]]:
    """``(index, digit, font index, condition index)`` for every image: digits, faces and conditions in turn."""
    jobs = []
    for index in range(count):
        digit, turn = index % 10, index // 10
        font = turn % fonts
        jobs.append((index, digit, font, (turn // fonts + font) % len(CONDITIONS)))
    return jobs


def generate(
    out: Path, *, count: int = 30_000, seed: int = 0, workers: int = 2, hollow_share: float = HOLLOW
) -> dict[str, str]:
    """Write ``count`` images to the safetensors file ``out``, a share ``hollow_share`` of them drawn
    :func:`hollow`; returns its metadata."""
    faces = available_fonts()
    if not faces:
        raise RuntimeError(f"none of the fonts of bench.training_set.FONTS is under {SHARE}")
    check_disjoint(faces)
    jobs = plan(count, len(faces))
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    drawn_hollow = np.zeros(count, dtype=np.uint8)
    redrawn: dict[str, Counter[str]] = {capture.name: Counter() for capture in CONDITIONS}
    make = functools.partial(_make, seed=seed, hollow_share=hollow_share)
    work = [(index, digit, str(faces[font].path), condition) for index, digit, font, condition in jobs]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (index, pixels, redraws, was_hollow) in enumerate(
            pool.imap_unordered(make, work, chunksize=32), start=1
        ):
            images[index], drawn_hollow[index] = pixels, was_hollow
            redrawn[CONDITIONS[jobs[index][3]].name].update(redraws)
            if done % 2000 == 0:
                logger.info("%d/%d images, %.0f images/s", done, count, done / (time.perf_counter() - started))
    elapsed = time.perf_counter() - started
    labels = np.array([digit for _, digit, _, _ in jobs], dtype=np.int64)
    metadata = _metadata(seed, count, faces, jobs, redrawn, hollow_share)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {
        "images": images,
        "labels": labels,
        "font_index": np.array([font for _, _, font, _ in jobs], dtype=np.int64),
        "condition_index": np.array([condition for _, _, _, condition in jobs], dtype=np.int64),
        "hollow": drawn_hollow,
    }
    out.write_bytes(_canonical(save(tensors, metadata=metadata)))
    logger.info(
        "wrote %s: %d images in %.1f s (%.0f images/s, %d workers), %d faces; pictures redrawn: %s",
        out, count, elapsed, count / elapsed, workers, len(faces), metadata["redrawn"],
    )  # fmt: skip
    return metadata


def _metadata(
    seed: int,
    count: int,
    faces: list[Face],
    jobs: list[tuple[int, int, int, int]],
    redrawn: dict[str, Counter[str]],
    hollow_share: float,
) -> dict[str, str]:
    fonts = [{"package": f.package, "file": f.path.name, "family": f.family, "style": f.style} for f in faces]
    return {
        "format": FORMAT,
        "generator": "bench.training_set",
        "seed": str(seed),
        "count": str(count),
        "hollow_share": str(hollow_share),
        "fonts": json.dumps(fonts),
        "conditions": json.dumps([c.name for c in CONDITIONS]),
        "per_digit": json.dumps(dict(sorted(Counter(str(digit) for _, digit, _, _ in jobs).items()))),
        "per_font": json.dumps([sum(1 for job in jobs if job[2] == i) for i in range(len(faces))]),
        "redrawn": json.dumps({name: dict(causes) for name, causes in redrawn.items() if causes}),
    }


def _canonical(blob: bytes) -> bytes:
    """The safetensors bytes with the header's keys sorted. safetensors writes its metadata in hash order,
    which changes from run to run; sorted, the same images and metadata make the same file (and SHA-256)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header with spaces to 8-byte alignment
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def describe(path: Path) -> str:
    """A table of a written set: images and pictures redrawn per condition, faces, seed and SHA-256."""
    with safe_open(str(path), framework="numpy") as stream:
        metadata, conditions = stream.metadata(), stream.get_tensor("condition_index")
        drawn_hollow = int(stream.get_tensor("hollow").sum()) if "hollow" in stream.keys() else 0  # noqa: SIM118 (no __contains__)
    names, redrawn = json.loads(metadata["conditions"]), json.loads(metadata["redrawn"])
    fonts = json.loads(metadata["fonts"])
    with path.open("rb") as binary:
        sha256 = hashlib.file_digest(binary, "sha256").hexdigest()
    lines = [
        f"{path}: {metadata['count']} images, seed {metadata['seed']}, SHA-256 {sha256}",
        f"{len(fonts)} faces ({sum(f['style'] == 'handwriting' for f in fonts)} handwriting-like) from "
        f"{len({f['package'] for f in fonts})} packages; images per face {min(json.loads(metadata['per_font']))}"
        f"-{max(json.loads(metadata['per_font']))}",
        f"drawn hollow: {drawn_hollow} images (share asked {metadata.get('hollow_share', '0')})",
        f"{'condition':<24} {'images':>6} {'redrawn':>8}  share of pictures drawn  causes",
    ]
    for index, name in enumerate(names):
        kept, causes = int((conditions == index).sum()), redrawn.get(name, {})
        lost = sum(causes.values())
        lines.append(f"{name:<24} {kept:>6} {lost:>8}  {100 * lost / (kept + lost):>5.1f}%  {causes or ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/synthetic_digits.safetensors"))
    parser.add_argument("--count", type=int, default=30_000, help="images (balanced over digits and faces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (the images do not depend on it)")
    parser.add_argument(
        "--hollow", type=float, default=HOLLOW, help="share of glyphs drawn as outlines (0 makes the sets of before)"
    )
    parser.add_argument("--describe", action="store_true", help="print what the file --out holds; make nothing")
    args = parser.parse_args(argv)
    if args.count < 1 or args.workers < 1:
        parser.error("--count and --workers must be at least 1")
    if not 0.0 <= args.hollow <= 1.0:
        parser.error("--hollow is a share between 0 and 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.describe:
        print(describe(args.out))  # the CLI's output
        return
    generate(args.out, count=args.count, seed=args.seed, workers=args.workers, hollow_share=args.hollow)


if __name__ == "__main__":
    main()
