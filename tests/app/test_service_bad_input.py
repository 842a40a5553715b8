"""Bad input: every case gets a clear RFC 9457 problem, never a 500, and the server keeps serving."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import encode, png_of, upload
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"
MiB = 1024 * 1024


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` but has almost no pixel data: decoding it would fail."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))


def png_bomb(side: int) -> bytes:
    """A real decompression bomb: a ``side x side`` black PNG, a few hundred kB compressed."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def jpeg_of(digit: int) -> bytes:
    from conftest import photo_like

    return photo_like(digit)


@dataclass(frozen=True)
class Case:
    """One bad request: what to send, and the problem it must get."""

    name: str
    status: int
    problem: str | None  # the type's slug; None for about:blank (plain HTTP errors)
    request: Callable[[], dict[str, Any]]
    path: str = "/classify"
    method: str = "POST"
    client: str = "client"
    detail_mentions: tuple[str, ...] = field(default=())


def multipart(content: bytes, boundary: str = "xyz") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


def chunked_body() -> Iterator[bytes]:
    for _ in range(100):  # 6.25 MiB in chunks, no Content-Length: the limit must cut the stream
        yield b"\xff" * 65536


PDF = b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"

CASES = [
    # the body
    Case("empty body", 422, "validation-error", lambda: {"content": b""}, detail_mentions=("file",)),
    Case("empty multipart body", 422, "validation-error", lambda: multipart(b"")),
    Case("malformed multipart", 400, None, lambda: multipart(b"this is not multipart at all")),
    Case(
        "multipart without boundary",
        400,
        None,
        lambda: {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
    ),
    Case(
        "missing file field",
        422,
        "validation-error",
        lambda: {"files": {"image": ("d.png", png_of(1), "image/png")}},
        detail_mentions=("body.file",),
    ),
    Case(
        "file field sent as text",
        422,
        "validation-error",
        lambda: multipart(b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nhello\r\n--xyz--\r\n'),
    ),
    Case("empty file", 422, "empty-file", lambda: {"files": upload(b"")}),
    # not an image
    Case(
        "text",
        422,
        "not-an-image",
        lambda: {"files": upload(b"just some text\n", "notes.txt", "application/octet-stream")},
    ),
    Case("html", 422, "not-an-image", lambda: {"files": upload(HTML, "page.png", "image/png")}),
    Case("pdf", 422, "not-an-image", lambda: {"files": upload(PDF, "doc.pdf", "application/octet-stream")}),
    Case(
        "random bytes",
        422,
        "not-an-image",
        lambda: {"files": upload(np.random.default_rng(0).bytes(4096), "noise.bin", "application/octet-stream")},
    ),
    Case("svg", 415, "unsupported-media-type", lambda: {"files": upload(b"<svg/>", "d.svg", "image/svg+xml")}),
    Case("truncated png", 422, "corrupt-image", lambda: {"files": upload(png_of(3)[: len(png_of(3)) // 2])}),
    Case(
        "truncated jpeg",
        422,
        "corrupt-image",
        lambda: {"files": upload(jpeg_of(3)[: len(jpeg_of(3)) // 2], "cut.jpg", "image/jpeg")},
    ),
    Case("png signature only", 422, "not-an-image", lambda: {"files": upload(b"\x89PNG\r\n\x1a\n")}),
    # limits
    Case(
        "upload above 5 MiB",
        413,
        "upload-too-large",
        lambda: {"files": upload(b"\0" * (5 * MiB + 1), "big.png")},
        detail_mentions=("5242880",),
    ),
    Case(
        "declared length above the limit",
        413,
        "upload-too-large",
        lambda: {"files": upload(b"\0" * (6 * MiB), "big.png")},
    ),
    Case("chunked body above the limit", 413, "upload-too-large", lambda: multipart(chunked_body())),  # type: ignore[arg-type]
    Case(
        "pixel count above the limit (header only)",
        413,
        "image-too-large",
        lambda: {"files": upload(png_header_only(100_000, 100_000))},
        detail_mentions=("10000000000",),
    ),
    Case("decompression bomb", 413, "image-too-large", lambda: {"files": upload(png_bomb(5000))}, path="/rotate"),
    Case(
        "too many files",
        413,
        "too-many-files",
        lambda: {"files": [("files", (f"{i}.png", png_of(1), "image/png")) for i in range(17)]},
        path="/classify/batch",
        detail_mentions=("17", "16"),
    ),
    Case("batch without files", 422, "validation-error", lambda: multipart(b"--xyz--\r\n"), path="/classify/batch"),
    Case(
        "bad file in a batch",
        422,
        "not-an-image",
        lambda: {"files": [("files", ("ok.png", png_of(1), "image/png")), ("files", ("bad.png", b"bad", "image/png"))]},
        path="/classify/batch",
        detail_mentions=("file 1", "bad.png"),
    ),
    # images without a digit
    Case("1x1 image", 422, "no-ink", lambda: {"files": upload(encode(np.zeros((1, 1), np.uint8)))}),
    Case("all white", 422, "no-ink", lambda: {"files": upload(encode(np.full((300, 300), 255, np.uint8)))}),
    Case("all black", 422, "no-ink", lambda: {"files": upload(encode(np.zeros((28, 28), np.uint8)))}),
    Case(
        "all white, preprocess=none",
        422,
        "no-ink",
        lambda: {"files": upload(encode(np.full((28, 28), 255, np.uint8))), "params": {"preprocess": "none"}},
    ),
    Case(
        "all black orbit",
        422,
        "no-ink",
        lambda: {"files": upload(encode(np.zeros((50, 50, 3), np.uint8)))},
        path="/orbit",
    ),
    # transformations
    Case(
        "unknown group",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"group": "Q4", "element": 0}},
    ),
    Case(
        "element out of range",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"group": "C8", "element": 8}},
        detail_mentions=("0..7",),
    ),
    Case(
        "negative element",
        422,
        "validation-error",
        lambda: {"files": upload(png_of(1)), "params": {"group": "C8", "element": -1}},
    ),
    Case(
        "element without group",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"element": 1}},
    ),
    Case(
        "angle and group",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"angle": 10, "group": "C4", "element": 1}},
    ),
    Case(
        "non-numeric angle", 422, "validation-error", lambda: {"files": upload(png_of(1)), "params": {"angle": "ten"}}
    ),
    Case("nan angle", 422, "validation-error", lambda: {"files": upload(png_of(1)), "params": {"angle": "nan"}}),
    Case("infinite angle", 422, "validation-error", lambda: {"files": upload(png_of(1)), "params": {"angle": "inf"}}),
    Case(
        "-infinite angle",
        422,
        "validation-error",
        lambda: {"files": upload(png_of(1)), "params": {"angle": "-Infinity"}},
        path="/rotate",
    ),
    Case(
        "unknown orbit group",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"group": "X"}},
        path="/orbit",
    ),
    Case(
        "orbit group too large",
        422,
        "invalid-transform",
        lambda: {"files": upload(png_of(1)), "params": {"group": "D999"}},
        path="/orbit",
    ),
    Case(
        "unknown preprocess mode",
        422,
        "validation-error",
        lambda: {"files": upload(png_of(1)), "params": {"preprocess": "magic"}},
    ),
    # content types
    Case("json body", 415, "unsupported-media-type", lambda: {"json": {"image": "aGVsbG8="}}),
    Case("form-urlencoded body", 415, "unsupported-media-type", lambda: {"data": {"file": "x"}}),
    Case(
        "raw png body",
        415,
        "unsupported-media-type",
        lambda: {"content": png_of(1), "headers": {"content-type": "image/png"}},
        path="/rotate",
    ),
    Case(
        "file declared as text/plain",
        415,
        "unsupported-media-type",
        lambda: {"files": upload(png_of(1), "digit.png", "text/plain")},
    ),
    Case(
        "file declared as pdf in a batch",
        415,
        "unsupported-media-type",
        lambda: {"files": [("files", ("a.pdf", PDF, "application/pdf"))]},
        path="/classify/batch",
    ),
    # methods
    Case("GET on an upload endpoint", 405, None, lambda: {}, method="GET"),
]


def send(client: TestClient, case: Case) -> Any:
    return client.request(case.method, case.path, **case.request())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_a_clear_problem(client: TestClient, case: Case) -> None:
    response = send(client, case)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "instance", "request_id"} <= set(body)
    assert body["status"] == case.status and body["request_id"] == response.headers["X-Request-ID"]
    expected_type = "about:blank" if case.problem is None else f"tag:equivariant-digits,2026:problem:{case.problem}"
    assert body["type"] == expected_type
    for fragment in case.detail_mentions:
        assert fragment in body["detail"]


def test_pixel_limit_is_checked_before_any_pixel_is_decoded(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    def refuse(self: object) -> None:
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    response = client.post("/classify", files=upload(png_header_only(50_000, 50_000)))
    assert response.status_code == 413


def test_path_separators_and_unicode_in_file_names_are_harmless(client: TestClient) -> None:
    for name, shown in [
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\me\\digit.png", "digit.png"),
        ("数字 ٣\u202e.png", "数字 ٣.png"),
        ("..", None),
        ("\x1b[31mred.png", "[31mred.png"),
    ]:
        response = client.post("/classify", files=upload(png_of(3), name=name))
        assert response.status_code == 200, (name, response.text)
        assert response.json()["filename"] == shown


def test_limits_follow_the_settings(tight_client: TestClient) -> None:
    big = encode(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))  # ~40 kB
    assert tight_client.post("/classify", files=upload(big + b"\0" * 40_000)).status_code == 413
    assert tight_client.post("/classify", files=upload(encode(np.zeros((600, 600), np.uint8)))).status_code == 413
    files = [("files", (f"{i}.png", png_of(1), "image/png")) for i in range(4)]
    response = tight_client.post("/classify/batch", files=files)
    assert response.status_code == 413 and response.json()["type"].endswith(":too-many-files")


def test_server_keeps_serving_after_the_whole_bad_input_suite(client: TestClient) -> None:
    for case in CASES:
        assert send(client, case).status_code < 500, case.name
    assert client.get("/readyz").status_code == 200
    response = client.post("/classify", files=upload(png_of(7)))
    assert response.status_code == 200
    assert {p["digit"] for p in response.json()["predictions"]} == {7}
    server_errors = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("gcnn_http_requests_total") and 'status="5' in line
    ]
    assert server_errors == []
