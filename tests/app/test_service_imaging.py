"""Decoding real-world uploads (app.pictures.imaging) and MNIST-style normalisation (app.pictures.preprocessing)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import draw_digit, encode, mnist_like, photo_like, upload
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFilter

from app.errors import CorruptImageError, EmptyUploadError, ImageTooLargeError, NoInkError, NotAnImageError
from app.pictures.imaging import decode_image, load_frame, open_image, to_display_pixels, to_grey
from app.pictures.preprocessing import (
    INPUT_SIZE,
    MNIST_CENTRE,
    PreprocessMode,
    looks_like_mnist,
    mnist_normalise,
    pixel_block_size,
    to_model_input,
)
from model.centring import MNIST_CENTRE as CENTRED_AT
from model.centring import mass_quarter_turn

BIG = 10**8


def grey_of(data: bytes) -> np.ndarray:
    return to_grey(decode_image(data, BIG))


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows = np.arange(image.shape[0])
    cols = np.arange(image.shape[1])
    return float(weights.sum(axis=1) @ rows / weights.sum()), float(weights.sum(axis=0) @ cols / weights.sum())


def ink_box(image: np.ndarray, level: float = 0.0) -> tuple[int, int]:
    rows, cols = np.nonzero(image > level)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


# -- formats and modes ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_every_supported_format_decodes(fmt: str) -> None:
    picture = draw_digit(4, (120, 90), (20, 10, 80, 80), ink=(20, 20, 20), paper=(250, 250, 250), width=6, mode="RGB")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    grey = grey_of(encode(picture, fmt, **options))
    assert grey.shape == (90, 120) and grey.dtype == np.uint8
    assert grey.max() >= 240 and grey.min() <= 40


def test_exif_orientation_is_honoured() -> None:
    picture = np.zeros((20, 40), np.uint8)
    picture[0, 0] = 255  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = grey_of(encode(Image.fromarray(picture), "PNG", exif=exif))
    assert decoded.shape == (40, 20)
    np.testing.assert_array_equal(decoded, np.rot90(picture, -1))


def test_exif_rotated_photo_is_classified_upright(client: TestClient) -> None:
    stored = Image.open(io.BytesIO(photo_like(7))).transpose(Image.Transpose.ROTATE_90)  # sideways on disk
    exif = Image.Exif()
    exif[0x0112] = 6
    response = client.post("/classify", files=upload(encode(stored, "JPEG", exif=exif, quality=90), "p.jpg"))
    assert {p["digit"] for p in response.json()["predictions"]} == {7}


def test_transparency_is_flattened_onto_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black...
    rgba[4:6, :, 3] = 255  # ...except an opaque black bar
    grey = grey_of(encode(rgba))
    assert (grey[4:6] == 0).all() and (grey[:4] == 255).all()
    half = np.zeros((1, 1, 4), np.uint8)
    half[..., 3] = 128  # half-transparent black over white paper: mid grey
    assert abs(int(grey_of(encode(half))[0, 0]) - 127) <= 1


def test_a_drawing_only_in_the_alpha_channel_becomes_dark_ink() -> None:
    rgba = np.full((10, 10, 4), 255, np.uint8)
    rgba[..., 3] = 0
    rgba[2:8, 4:6, 3] = 255  # white ink on a transparent canvas: invisible on white paper
    grey = grey_of(encode(rgba))
    assert (grey[2:8, 4:6] == 0).all() and grey[0, 0] == 255


def test_palette_with_transparency_and_grey_alpha() -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.putpixel((1, 1), 1)
    grey = grey_of(encode(palette, "PNG", transparency=0))  # index 0 transparent: paper shows through
    assert grey[0, 0] == 255 and grey[1, 1] == 76  # pure red: luma 0.299 * 255
    la = Image.new("LA", (2, 1), (0, 255))
    la.putpixel((1, 0), (0, 0))
    assert grey_of(encode(la)).tolist() == [[0, 255]]


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257 * 100, 65535, 300]], dtype=np.uint16)
    for fmt in ("PNG", "TIFF"):
        grey = grey_of(encode(Image.fromarray(values), fmt))
        assert grey.tolist() == [[0, 100, 255, 1]]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[0.0, 0.5, 1.0]], np.float32), [[0, 128, 255]]),  # [0, 1]
        (np.array([[0.0, 100.0, 255.0]], np.float32), [[0, 100, 255]]),  # [0, 255]
        (np.array([[-1.0, 0.0, 3.0]], np.float32), [[0, 64, 255]]),  # anything else: stretched
        (np.array([[np.nan, 1.0, np.inf]], np.float32), [[0, 255, 0]]),  # non-finite: 0
    ],
)
def test_float_images_are_mapped_to_eight_bits(values: np.ndarray, expected: list[list[int]]) -> None:
    assert to_grey(Image.fromarray(values)).tolist() == expected


def test_other_modes_convert_to_grey() -> None:
    assert to_grey(Image.new("1", (2, 2), 1)).tolist() == [[255, 255], [255, 255]]
    assert to_grey(Image.fromarray(np.array([[7, 65535]], np.int32))).tolist() == [[0, 255]]  # 16-bit data
    assert to_grey(Image.fromarray(np.array([[7, 200]], np.int32))).tolist() == [[7, 200]]  # 8-bit data stored wide
    cmyk = grey_of(encode(Image.new("CMYK", (4, 4), (0, 0, 0, 255)), "JPEG"))
    assert cmyk.max() <= 10  # full black ink
    assert to_grey(Image.new("LAB", (1, 1), (200, 128, 128))).tolist() == [[200]]
    assert to_grey(Image.new("La", (1, 1), (0, 0))).tolist() == [[255]]


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "WEBP", "PNG"])
def test_multi_frame_images_use_the_first_frame(client: TestClient, fmt: str) -> None:
    frames = [Image.fromarray(mnist_like(d)).convert("RGB" if fmt == "WEBP" else "L") for d in (1, 7)]
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], **options)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    response = client.post("/classify", files=upload(buffer.getvalue(), f"anim.{fmt.lower()}", "image/png"))
    assert {p["digit"] for p in response.json()["predictions"]} == {1}


def test_display_pixels_keep_colour_and_alpha() -> None:
    assert to_display_pixels(Image.new("RGB", (3, 2))).shape == (2, 3, 3)
    assert to_display_pixels(Image.new("RGBA", (3, 2))).shape == (2, 3, 4)
    assert to_display_pixels(Image.new("P", (3, 2))).shape == (2, 3, 3)
    assert to_display_pixels(Image.new("CMYK", (3, 2))).shape == (2, 3, 3)
    assert to_display_pixels(Image.new("I;16", (3, 2))).shape == (2, 3)


def test_decode_errors_are_typed() -> None:
    with pytest.raises(EmptyUploadError):
        open_image(b"", BIG)
    with pytest.raises(NotAnImageError):
        open_image(b"GIF89a not really", BIG)
    with pytest.raises(NotAnImageError):  # a real image, in a format the API does not accept
        open_image(encode(Image.new("L", (4, 4)), "PPM"), BIG)
    with pytest.raises(ImageTooLargeError):
        open_image(encode(Image.new("L", (100, 100))), 9_999)
    with pytest.raises(CorruptImageError):
        data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
        decode_image(data[:-200], BIG)


# -- MNIST-style normalisation ------------------------------------------------------------
def photo_grey(digit: int = 7) -> np.ndarray:
    return grey_of(photo_like(digit))


def test_normalised_digit_fits_20x20_with_centre_of_mass_at_14() -> None:
    image = mnist_normalise(photo_grey(0))
    assert image.shape == (INPUT_SIZE, INPUT_SIZE) and image.dtype == np.float32
    assert image.max() == pytest.approx(1.0) and image.min() == 0.0
    assert max(ink_box(image)) == 20
    row, col = centre_of_mass(image)
    assert row == pytest.approx(14.0, abs=0.5) and col == pytest.approx(14.0, abs=0.5)
    assert image[:2].max() == 0 and image[-2:].max() == 0  # a black margin, like MNIST


@pytest.mark.parametrize("digit", range(10))
def test_normalised_digits_sit_where_the_centred_reading_expects_an_upright_mnist_digit(digit: int) -> None:
    """The service reads an input without the centre-of-mass cue where its mass sits at MNIST's place
    (model.centring): every digit the preprocessing centres must land there, at quarter turn 0."""
    assert (MNIST_CENTRE, MNIST_CENTRE) == CENTRED_AT
    image = torch.from_numpy(mnist_normalise(photo_grey(digit)))[None, None]
    assert mass_quarter_turn(image).tolist() == [0]


def tiny_scan(digit: int, side: int) -> np.ndarray:
    """A dark digit on light paper scanned at ``side`` pixels (area averaging), uint8."""
    picture = draw_digit(digit, (240, 240), (60, 30, 180, 210), ink=20, paper=235, width=22)
    return np.asarray(picture.resize((side, side), Image.Resampling.BOX))


@pytest.mark.parametrize("k", [2, 3, 7])
def test_pixel_blocks_are_found_only_where_every_pixel_is_repeated(k: int) -> None:
    scan = tiny_scan(5, 12)[:, :9]  # not square
    enlarged = np.repeat(np.repeat(scan, k, axis=0), k, axis=1)
    assert pixel_block_size(enlarged) == k
    touched = enlarged.copy()
    touched[5, 4] ^= 1  # one pixel of one block differs
    assert pixel_block_size(touched) == 1
    assert pixel_block_size(enlarged[:, 1:]) == 1  # blocks cut at an edge
    assert pixel_block_size(scan) == 1 and pixel_block_size(photo_grey(5)) == 1
    assert pixel_block_size(np.repeat(np.repeat(scan[4:7, 3:6], 9, axis=0), 9, axis=1)) == 1  # 3 native pixels: left


@pytest.mark.parametrize("digit", [2, 6, 7])
def test_a_tiny_scan_reads_the_same_enlarged_by_repeating_pixels_or_smoothly(digit: int) -> None:
    """Whoever enlarged the scan, the service sees the smooth digit, not the blocks' stairs (which stay on
    the pixel grid when the digit is turned)."""
    scan = tiny_scan(digit, 12)
    blocky = np.repeat(np.repeat(scan, 8, axis=0), 8, axis=1)
    smooth = np.asarray(Image.fromarray(scan).resize((96, 96), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(mnist_normalise(blocky), mnist_normalise(smooth))


def test_aspect_ratio_is_kept() -> None:
    bar = np.full((300, 300), 255, np.uint8)
    bar[140:160, 50:250] = 0  # 200 x 20: a 10:1 horizontal stroke
    height, width = ink_box(mnist_normalise(bar), 0.3)
    assert width == 20 and 2 <= height <= 4


def test_polarity_is_detected() -> None:
    dark_on_light = photo_grey(4)
    light_on_dark = 255 - dark_on_light
    np.testing.assert_allclose(mnist_normalise(dark_on_light), mnist_normalise(light_on_dark), atol=0.02)


def test_a_speck_of_dust_does_not_move_the_digit() -> None:
    clean = photo_grey(3)
    dusty = clean.copy()
    dusty[5:7, 5:7] = 0  # a dark speck in the far corner
    with_dust, without = mnist_normalise(dusty), mnist_normalise(clean)
    assert ink_box(with_dust, 0.3) == ink_box(without, 0.3)
    assert centre_of_mass(with_dust) == pytest.approx(centre_of_mass(without), abs=0.1)
    assert np.abs(with_dust - without).mean() < 0.01


@pytest.mark.parametrize("digit", [2, 4, 5, 8])
def test_a_shadow_across_the_page_is_levelled_out(client: TestClient, digit: int) -> None:
    ink = np.asarray(draw_digit(digit, (400, 300), (150, 40, 280, 250), ink=40, paper=255, width=9), np.float64)
    light = np.linspace(1.0, 0.4, 400)[None, :] * np.linspace(1.0, 0.9, 300)[:, None]  # bright left, dim right
    photo = np.clip(ink * light + np.random.default_rng(digit).normal(0, 3, ink.shape), 0, 255).astype(np.uint8)
    response = client.post("/classify", files=upload(encode(photo, "JPEG", quality=75), "shadow.jpg"))
    assert {p["digit"] for p in response.json()["predictions"]} == {digit}


def test_fine_pen_strokes_are_thickened_to_mnist_width() -> None:
    thin = np.asarray(draw_digit(1, (400, 400), (100, 40, 300, 360), ink=0, paper=255, width=3))
    image = mnist_normalise(thin)
    assert (image > 0.5).sum(axis=1).max() >= 2  # at least two pixels wide, not a faint hairline


def test_auto_passes_mnist_like_images_through_and_normalises_the_rest() -> None:
    digit = mnist_like(5)
    assert looks_like_mnist(digit)
    np.testing.assert_array_equal(to_model_input(digit, PreprocessMode.AUTO), digit / np.float32(255))
    inverted = 255 - digit  # 28x28 but dark ink on white: not MNIST-like
    assert not looks_like_mnist(inverted)
    np.testing.assert_allclose(to_model_input(inverted, PreprocessMode.AUTO), mnist_normalise(inverted))
    assert not looks_like_mnist(np.zeros((28, 29), np.uint8))


@pytest.mark.parametrize("mode", list(PreprocessMode))
@pytest.mark.parametrize("level", [0, 128, 255])
def test_no_ink_in_any_mode(mode: PreprocessMode, level: int) -> None:
    with pytest.raises(NoInkError):
        to_model_input(np.full((40, 30), level, np.uint8), mode)


def test_faint_noise_alone_is_no_ink() -> None:
    noise = np.random.default_rng(0).integers(240, 256, (100, 100), dtype=np.uint8)
    with pytest.raises(NoInkError):
        to_model_input(noise)


# -- real uploads: bold tight crops, underlines, specks, rules --------------------------------------
def _bold_one(width: int, size: int = 64) -> np.ndarray:
    """A '1' in a marker as wide as a third of the scan, cropped so its stroke touches top and bottom."""
    image = Image.new("L", (size, size), 235)
    pen = ImageDraw.Draw(image)
    pen.line([(size // 2, 0), (size // 2, size)], fill=25, width=width)
    pen.line([(size // 2 - width // 2, 8), (size // 2 - 18, 20)], fill=25, width=width // 2)
    return np.asarray(image)


@pytest.mark.parametrize("width", [22, 30, 40])
def test_a_bold_digit_cropped_tight_keeps_its_strokes(width: int) -> None:
    # measured before the stroke-aware paper estimate: 46, 33 and 10 ink pixels survived (the stroke taken for paper)
    digit = to_model_input(_bold_one(width))
    assert (digit > 0.5).sum() >= 150, (digit > 0.5).sum()


def _bold_slashed_zero(width: int, height: int, pen: int, shadow: float = 0.0) -> np.ndarray:
    """A slashed 0 in a marker cropped so tight that ink covers ~70% of the picture, edges soft as a capture's;
    ``shadow``: the light falls off linearly across the picture to ``1 - shadow`` at the right edge."""
    image = Image.new("L", (4 * width, 4 * height), 225)
    draw = ImageDraw.Draw(image)
    draw.ellipse([0, 4, 4 * width - 1, 4 * height - 5], outline=25, width=4 * pen)
    draw.line([(3 * width, 0.8 * height), (width, 3.2 * height)], fill=25, width=4 * pen)
    soft = np.asarray(image.resize((width, height), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(1.0)))
    light = 1.0 - shadow * np.linspace(0.0, 1.0, width)[None, :]
    return (soft * light).round().astype(np.uint8)


@pytest.mark.parametrize(("width", "height", "pen"), [(36, 52, 11), (60, 90, 14)])
def test_a_bold_digit_cropped_tight_is_not_taken_for_a_shadow(width: int, height: int, pen: int) -> None:
    """Ink along most of the border once made the light look uneven, and the local paper estimate then took the
    strokes for paper (measured: 72 and 61 pixels of ink left of ~200; the tuning acceptance set's bold tight crops
    91.2% -> 97.5% upright for the served model once fixed)."""
    digit = to_model_input(_bold_slashed_zero(width, height, pen))
    assert (digit > 0.5).sum() >= 150, (digit > 0.5).sum()


@pytest.mark.parametrize(("width", "height", "pen"), [(36, 52, 11), (60, 90, 14)])
def test_a_bold_digit_under_a_shadow_keeps_its_strokes(width: int, height: int, pen: int) -> None:
    """Under uneven light the paper is estimated by an opening whose window must be wider than every stroke: a
    window of four times the strokes' mean width (measured: 98 and 93 pixels of ink left with twice the mean width,
    191 and 156 now; the tuning acceptance set's shadow cell 95.0/88.8% -> 98.8/96.2% for the served model)."""
    digit = to_model_input(_bold_slashed_zero(width, height, pen, shadow=0.3))
    assert (digit > 0.5).sum() >= 140, (digit > 0.5).sum()


def test_underline_specks_and_rules_are_not_part_of_the_digit() -> None:
    clean = draw_digit(7, (240, 240), (80, 40, 160, 170), ink=20, paper=235, width=9)
    cluttered = clean.copy()
    pen = ImageDraw.Draw(cluttered)
    pen.line([(60, 190), (190, 190)], fill=20, width=4)  # an underline
    for x, y in ((20, 30), (215, 60), (30, 220), (200, 225)):
        pen.ellipse([x, y, x + 3, y + 3], fill=20)  # specks of dust
    for y in range(12, 240, 24):
        pen.line([(0, y), (239, y)], fill=150, width=1)  # ruled paper, faint
    expected = to_model_input(np.asarray(clean))
    got = to_model_input(np.asarray(cluttered))
    assert np.abs(got - expected).mean() < 0.02, np.abs(got - expected).mean()


def test_a_thin_underline_on_a_large_photo_is_not_part_of_the_digit() -> None:
    """A 2 px pen line under a digit on a 720 px photo: averaged down to the 48 px at which pieces are told apart it
    fades below the ink level and was kept, inside the crop (measured on the tuning acceptance set: 25 of its 160
    'specks and underline' images misread by the served model, 12 once pieces are found on block maxima)."""
    clean = draw_digit(0, (720, 720), (280, 180, 440, 460), ink=20, paper=235, width=10)
    underlined = clean.copy()
    ImageDraw.Draw(underlined).line([(250, 520), (470, 520)], fill=20, width=2)
    expected = to_model_input(np.asarray(clean))
    got = to_model_input(np.asarray(underlined))
    assert np.abs(got - expected).mean() < 0.01, np.abs(got - expected).mean()


def test_a_reduced_decode_frees_the_full_size_pixels_of_the_opened_image() -> None:
    """The caller still holds what open_image returned: once load_frame returns a reduced copy, the full-size
    pixels it decoded into that image are released (a 4096x4096 RGBA scan holds 64 MiB of them)."""
    picture = Image.fromarray(np.zeros((1024, 1024, 4), dtype=np.uint8), "RGBA")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    header = open_image(buffer.getvalue(), 10**7)
    frame = load_frame(header, max_side=512)
    assert frame.size == (512, 512)
    with pytest.raises(ValueError, match="closed image"):
        header.getpixel((0, 0))
    small = open_image(buffer.getvalue(), 10**7)
    assert load_frame(small) is small and small.getpixel((0, 0)) == (0, 0, 0, 0)  # nothing reduced: kept open
