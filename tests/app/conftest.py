"""Fixtures for the service tests: apps with chosen settings, and images drawn on the spot.

No dataset is needed: digits are drawn as pen strokes with Pillow, either as
MNIST-like 28x28 images (light ink on black, centred) or as photo-like pictures
(dark ink on off-white paper, large, off-centre, JPEG-compressed).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.main import create_app
from app.settings import Settings, get_settings

# Pen strokes of each digit, as polylines in a unit box (x right, y down).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [
        [
            (0.5, 0.05),
            (0.8, 0.2),
            (0.88, 0.5),
            (0.8, 0.8),
            (0.5, 0.95),
            (0.2, 0.8),
            (0.12, 0.5),
            (0.2, 0.2),
            (0.5, 0.05),
        ]
    ],
    1: [[(0.5, 0.05), (0.5, 0.95)]],
    2: [[(0.15, 0.25), (0.3, 0.08), (0.6, 0.05), (0.8, 0.2), (0.78, 0.4), (0.15, 0.92), (0.88, 0.92)]],
    3: [[(0.15, 0.1), (0.8, 0.1), (0.45, 0.45), (0.75, 0.55), (0.8, 0.78), (0.6, 0.93), (0.15, 0.88)]],
    4: [[(0.6, 0.95), (0.6, 0.05), (0.1, 0.65), (0.85, 0.65)]],
    5: [[(0.8, 0.08), (0.25, 0.08), (0.2, 0.45), (0.55, 0.38), (0.8, 0.55), (0.78, 0.8), (0.5, 0.93), (0.15, 0.85)]],
    6: [
        [
            (0.7, 0.05),
            (0.35, 0.35),
            (0.2, 0.65),
            (0.3, 0.9),
            (0.6, 0.93),
            (0.78, 0.72),
            (0.6, 0.52),
            (0.3, 0.58),
            (0.22, 0.68),
        ]
    ],
    7: [[(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)]],
    8: [
        [
            (0.5, 0.5),
            (0.25, 0.3),
            (0.5, 0.07),
            (0.75, 0.3),
            (0.5, 0.5),
            (0.2, 0.73),
            (0.5, 0.95),
            (0.8, 0.73),
            (0.5, 0.5),
        ]
    ],
    9: [[(0.78, 0.35), (0.5, 0.45), (0.25, 0.3), (0.5, 0.07), (0.78, 0.3), (0.75, 0.6), (0.65, 0.95)]],
}


def draw_digit(
    digit: int,
    size: tuple[int, int],
    box: tuple[float, float, float, float],
    *,
    ink: int | tuple[int, ...],
    paper: int | tuple[int, ...],
    width: int,
    mode: str = "L",
) -> Image.Image:
    """``digit``'s strokes drawn into ``box`` (left, top, right, bottom) of a ``size`` canvas."""
    image = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(image)
    left, top, right, bottom = box
    for line in STROKES[digit]:
        points = [(left + u * (right - left), top + v * (bottom - top)) for u, v in line]
        pen.line(points, fill=ink, width=width, joint="curve")
    return image


def mnist_like(digit: int) -> np.ndarray:
    """A 28x28 uint8 digit the way MNIST has them: white ink on black, 20 px tall, centre of mass at (14, 14).

    Drawn 10x larger and shrunk with area averaging, like MNIST's anti-aliasing.
    """
    big = draw_digit(digit, (280, 280), (70, 40, 210, 240), ink=255, paper=0, width=24)
    small = np.asarray(big.resize((28, 28), Image.Resampling.BOX))
    weights = small.astype(np.float64)
    rows = np.arange(28)
    shift = (
        round(14 - weights.sum(axis=1) @ rows / weights.sum()),
        round(14 - weights.sum(axis=0) @ rows / weights.sum()),
    )
    return np.roll(small, shift, axis=(0, 1))


def photo_like(digit: int, *, quality: int = 70) -> bytes:
    """A dark digit written on off-white paper, 300x300, off-centre, JPEG-compressed, with paper grain."""
    picture = draw_digit(
        digit, (300, 300), (150, 30, 260, 190), ink=(30, 32, 40), paper=(238, 235, 226), width=9, mode="RGB"
    )
    grain = np.random.default_rng(digit).normal(0, 3, (300, 300, 1))
    noisy = np.clip(np.asarray(picture, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(noisy), "JPEG", quality=quality)


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_of(digit: int) -> bytes:
    return encode(mnist_like(digit))


def upload(data: bytes, name: str = "digit.png", content_type: str = "image/png") -> dict[str, Any]:
    """``files=`` for a single-file request."""
    return {"file": (name, data, content_type)}


def client_for(settings: Settings) -> Iterator[TestClient]:
    app: FastAPI = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    """The service with its default settings, models loaded (shared: loading takes a second)."""
    yield from client_for(Settings())


@pytest.fixture(scope="session")
def tight_client() -> Iterator[TestClient]:
    """Small limits, to test them cheaply."""
    yield from client_for(
        Settings(max_upload_bytes=64 * 1024, max_pixels=250_000, max_batch=3, max_orbit=16, max_rotate_pixels=10_000)
    )


@pytest.fixture
def make_client() -> Callable[..., TestClient]:
    """A client for an app with these settings overrides (closed at the end of the test)."""
    clients: list[Iterator[TestClient]] = []

    def make(**overrides: Any) -> TestClient:
        iterator = client_for(Settings(**overrides))
        clients.append(iterator)
        return next(iterator)

    yield make  # type: ignore[misc]
    for iterator in clients:
        next(iterator, None)
