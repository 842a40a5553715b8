"""Property tests: random and mutated image bytes never make the decoding path fail with anything but
a typed input error, and never make the service answer 500."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
from conftest import draw_digit, upload
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.errors import InputError
from app.pictures.decoding import model_input
from app.pictures.imaging import decode_image, to_display_pixels
from app.pictures.preprocessing import PreprocessMode
from app.pictures.transforms import Transform, transform_picture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # "Corrupt EXIF data" etc.: expected here

MAX_PIXELS = 1_000_000  # mutated headers may declare any size; keep the decodes that pass quick


@cache
def seeds() -> tuple[bytes, ...]:
    """Valid images of every supported format and several modes, to mutate."""
    picture = draw_digit(2, (48, 40), (8, 4, 40, 36), ink=(20, 20, 30), paper=(240, 240, 230), width=4, mode="RGB")
    variants = [
        ("PNG", picture, {}),
        ("PNG", picture.convert("P"), {"transparency": 0}),
        ("PNG", Image.fromarray(np.asarray(picture.convert("L"), np.uint16) * 257), {}),
        ("JPEG", picture, {"quality": 80}),
        ("JPEG", picture.convert("CMYK"), {}),
        ("GIF", picture.convert("L"), {}),
        ("BMP", picture, {}),
        ("WEBP", picture.convert("RGBA"), {"lossless": True}),
        ("TIFF", picture, {"compression": "tiff_lzw"}),
        ("TIFF", picture.convert("F"), {}),
    ]
    encoded = []
    for fmt, image, options in variants:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        encoded.append(buffer.getvalue())
    return tuple(encoded)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite-header"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        else:  # the first 64 bytes hold the sizes, modes and chunk lengths that decoders trust
            header_position = draw(st.integers(0, min(63, max(0, len(data) - 1))))
            data[header_position : header_position + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data)


image_bytes = st.one_of(st.binary(max_size=2048), mutated_images())


def decode_everything(data: bytes) -> None:
    """Every path an upload's bytes take: the classifier's input, and /rotate's display pixels."""
    for mode in PreprocessMode:
        try:
            image = model_input(data, MAX_PIXELS, mode)
        except InputError:
            continue
        assert image.shape == (28, 28) and image.dtype == np.float32
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    try:
        pixels = to_display_pixels(decode_image(data, MAX_PIXELS))
    except InputError:
        return
    assert pixels.dtype == np.uint8
    transform_picture(pixels, Transform.from_angle(90.0))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_bytes)
def test_decoding_raises_only_input_errors(data: bytes) -> None:
    decode_everything(data)


@pytest.mark.parametrize("seed", range(len(seeds())))
def test_the_unmutated_seeds_decode(seed: int) -> None:
    assert model_input(seeds()[seed], MAX_PIXELS, PreprocessMode.AUTO).shape == (28, 28)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=image_bytes, path=st.sampled_from(["/classify", "/rotate", "/orbit"]))
def test_the_service_never_answers_500(client: TestClient, data: bytes, path: str) -> None:
    response = client.post(path, files=upload(data, "fuzz.bin", "application/octet-stream"))
    assert response.status_code in (200, 413, 422), response.text
