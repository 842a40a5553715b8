"""/orbit, /rotate, /models, /groups, health, metrics, request ids, the docs and the demo page."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, mnist_like, png_of, upload
from fastapi.testclient import TestClient
from PIL import Image

from app.routers import site
from app.settings import DEFAULT_WEIGHTS_DIR
from model.centring import CARD_SECTION, chosen_lean
from tests.served_models import CNN, GCNN, SERVED_MODELS

PROBLEM = "application/problem+json"


# -- /orbit -------------------------------------------------------------------
def test_orbit_c8_by_default_gcnn_invariant(client: TestClient) -> None:
    response = client.post("/orbit", files=upload(png_of(7)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["group"] == "C8" and body["order"] == 8 and len(body["rows"]) == 8
    assert [row["degrees"] for row in body["rows"]] == [45.0 * k for k in range(8)]
    assert not any(row["reflection"] for row in body["rows"])
    summary = {entry["model"]: entry for entry in body["summary"]}
    assert summary[GCNN] == {
        "model": GCNN,
        "upright_digit": 7,
        "distinct_predictions": 1,
        "agreement": 1.0,
    }
    cnn = summary[CNN]
    assert cnn["upright_digit"] == 7 and cnn["distinct_predictions"] > 1 and cnn["agreement"] < 1.0
    cnn_digits = [row["predictions"][0]["digit"] for row in body["rows"]]
    assert cnn["distinct_predictions"] == len(set(cnn_digits))
    assert cnn["agreement"] == pytest.approx(cnn_digits.count(7) / 8)


def test_orbit_dihedral_group_has_reflections(client: TestClient) -> None:
    body = client.post("/orbit", files=upload(png_of(4)), params={"group": "D4", "return_image": True}).json()
    assert body["order"] == 8 and [row["reflection"] for row in body["rows"]] == [False] * 4 + [True] * 4
    assert body["image"] is not None


def test_orbit_refuses_a_group_above_the_limit(tight_client: TestClient) -> None:
    response = tight_client.post("/orbit", files=upload(png_of(4)), params={"group": "C17"})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert "at most 16" in response.json()["detail"]


# -- /rotate ------------------------------------------------------------------
def rotated(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_rotate_quarter_turn_of_non_square_transposes_size_exactly(client: TestClient) -> None:
    picture = np.random.default_rng(0).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    image = rotated(client.post("/rotate", files=upload(encode(picture)), params={"angle": 90}))
    assert image.size == (20, 40) and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.rot90(picture, 1))  # counter-clockwise


def test_rotate_group_element_mirrors_then_rotates(client: TestClient) -> None:
    picture = np.random.default_rng(1).integers(0, 256, (30, 30), dtype=np.uint8)
    response = client.post("/rotate", files=upload(encode(picture)), params={"group": "D4", "element": 6})
    np.testing.assert_array_equal(np.asarray(rotated(response)), np.rot90(np.fliplr(picture), 2))
    assert response.headers["X-Rotation-Degrees"] == "180" and response.headers["X-Reflection"] == "true"


def test_rotate_by_an_angle_fills_the_corners_with_the_background(client: TestClient) -> None:
    picture = np.full((50, 80, 3), (250, 245, 230), np.uint8)  # paper
    picture[20:30, 30:50] = (20, 20, 20)  # ink
    image = rotated(client.post("/rotate", files=upload(encode(picture)), params={"angle": 30}))
    assert image.size == (80, 50) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert pixels[0, 0].tolist() == [250, 245, 230] and pixels[25, 40].tolist() == [20, 20, 20]


def test_rotate_by_an_angle_keeps_transparency_transparent(client: TestClient) -> None:
    picture = np.zeros((40, 40, 4), np.uint8)
    picture[..., :3] = 90
    picture[5:35, 5:35, 3] = 255
    image = rotated(client.post("/rotate", files=upload(encode(picture)), params={"angle": 45}))
    pixels = np.asarray(image)
    assert image.mode == "RGBA" and pixels[0, 0, 3] == 0 and pixels[20, 20].tolist() == [90, 90, 90, 255]
    edge = pixels[(pixels[..., 3] > 0) & (pixels[..., 3] < 255)]
    assert len(edge) and np.abs(edge[:, :3].astype(int) - 90).max() <= 1  # premultiplied: edges keep colour


def test_a_rotated_picture_still_classifies(client: TestClient) -> None:
    turned = client.post("/rotate", files=upload(png_of(7)), params={"angle": 30}).content
    body = client.post("/classify", files=upload(turned)).json()
    assert {p["model"]: p["digit"] for p in body["predictions"]}[GCNN] == 7


def test_rotate_identity_returns_the_decoded_picture(client: TestClient) -> None:
    picture = mnist_like(2)
    np.testing.assert_array_equal(np.asarray(rotated(client.post("/rotate", files=upload(encode(picture))))), picture)


def test_rotate_sends_a_safe_download_name(client: TestClient) -> None:
    response = client.post("/rotate", files=upload(png_of(1), name="../ünïcødé.png"), params={"angle": 180})
    disposition = response.headers["content-disposition"]
    assert disposition == (
        "inline; filename=\"_n_c_d_-rotated.png\"; filename*=UTF-8''%C3%BCn%C3%AFc%C3%B8d%C3%A9-rotated.png"
    )


def test_rotate_works_on_a_tiny_image(client: TestClient) -> None:
    image = rotated(client.post("/rotate", files=upload(encode(np.zeros((1, 1), np.uint8))), params={"angle": 45}))
    assert image.size == (1, 1)


def test_rotate_limits_the_picture_size_for_every_transform(tight_client: TestClient) -> None:
    # quarter turns too: the answer is a PNG as large as the picture (30 MiB for a noisy 4096x4096 photo)
    for params in ({"angle": 10}, {"angle": 90}, {"group": "D4", "element": 4}):
        response = tight_client.post("/rotate", files=upload(encode(np.zeros((200, 200), np.uint8))), params=params)
        assert response.status_code == 413 and response.json()["type"].endswith(":image-too-large"), params
    small = encode(np.zeros((100, 100), np.uint8))  # the tight limit is 10,000 pixels
    assert tight_client.post("/rotate", files=upload(small), params={"angle": 90}).status_code == 200


# -- /models, /groups -----------------------------------------------------------
def test_models_lists_cards_and_verified_checksums(client: TestClient) -> None:
    models = client.get("/models").json()["models"]
    assert [m["name"] for m in models] == list(SERVED_MODELS)
    for model in models:
        card = json.loads((DEFAULT_WEIGHTS_DIR / f"{model['name']}.json").read_text())
        weights = (DEFAULT_WEIGHTS_DIR / card["weights_file"]).read_bytes()
        assert model["sha256"] == card["sha256"] == hashlib.sha256(weights).hexdigest()
        assert model["parameters"] == card["parameters"] and model["config"] == card["config"]
        assert model["metrics"]["upright_accuracy"] > 0.99 and "rotated_accuracy" in model["metrics"]
        assert model["training"]["epochs"] == card["training"]["epochs"]
    assert models[0]["architecture"] == "BaselineCNN" and models[0]["group"] is None and models[0]["lean"] is None
    assert models[1]["architecture"] == "GroupEquivariantCNN" and models[1]["group"] == "C8"
    served = json.loads((DEFAULT_WEIGHTS_DIR / f"{GCNN}.json").read_text())
    assert models[1]["lean"] == chosen_lean(served) == served[CARD_SECTION]["lean"]  # chosen on the tuning set


def test_group_elements_with_angles_reflections_and_matrices(client: TestClient) -> None:
    body = client.get("/groups/D4").json()
    assert (body["name"], body["order"], body["rotations"], body["reflections"]) == ("D4", 8, 4, True)
    quarter, mirror = body["elements"][1], body["elements"][4]
    assert quarter == {
        "index": 1,
        "rotation": 1,
        "degrees": 90.0,
        "reflection": False,
        "exact": True,
        "matrix": [[0.0, -1.0], [1.0, 0.0]],
    }
    assert mirror["reflection"] is True and mirror["matrix"] == [[-1.0, 0.0], [0.0, 1.0]]
    c8 = client.get("/groups/c8").json()
    assert c8["name"] == "C8" and c8["elements"][1]["exact"] is False
    assert c8["elements"][1]["matrix"][0][0] == pytest.approx(2**-0.5)


@pytest.mark.parametrize("name", ["Q4", "C0", "C1000", "D", "%20"])
def test_unknown_group_is_a_404_problem(client: TestClient, name: str) -> None:
    response = client.get(f"/groups/{name}")
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith(":unknown-group")


# -- operations -------------------------------------------------------------------
def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == list(SERVED_MODELS)
    assert ready.json()["torch_threads"] >= 1


def test_metrics_count_requests_latency_inference_and_images(client: TestClient) -> None:
    client.post("/classify", files=upload(png_of(2)))
    client.post("/classify", files=upload(b"nope"))
    text = client.get("/metrics").text
    assert 'gcnn_http_requests_total{endpoint="/classify",method="POST",status="200"}' in text
    assert 'gcnn_http_requests_total{endpoint="/classify",method="POST",status="422"}' in text
    assert (
        'gcnn_http_request_duration_seconds_bucket{endpoint="/classify",le="0.01",method="POST",status="200"}' in text
    )
    assert f'gcnn_inference_duration_seconds_count{{model="{GCNN}"}}' in text
    assert f'gcnn_model_images_total{{model="{CNN}"}}' in text
    assert 'gcnn_images_processed_total{endpoint="/classify"}' in text
    assert "gcnn_ready 1.0" in text


def test_metrics_label_routes_by_template_and_unmatched_paths_together(client: TestClient) -> None:
    for path in ("/no/such/path/12345", "/groups/C3", "/docs", "/openapi.json", "/static/no-such-file.js"):
        client.get(path)
    text = client.get("/metrics").text
    assert "/no/such/path" not in text and 'endpoint="unmatched",method="GET",status="404"' in text
    assert 'endpoint="/groups/{name}"' in text and "/groups/C3" not in text
    for template in ("/docs", "/openapi.json", "/static"):
        assert f'gcnn_http_requests_total{{endpoint="{template}",method="GET"' in text


def test_request_id_is_returned_and_client_ids_are_kept_if_sane(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32
    body = client.post("/classify", files=upload(b""), headers={"X-Request-ID": "req-42"}).json()
    assert body["request_id"] == "req-42"


def test_log_lines_are_json_with_the_request_id(client: TestClient) -> None:
    handler = next(h for h in logging.getLogger("app").handlers if isinstance(h, logging.StreamHandler))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        client.get("/healthz", headers={"X-Request-ID": "log-test-1"})
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line.get("request_id") == "log-test-1"]
    assert access and access[0]["status"] == 200 and access[0]["endpoint"] == "/healthz"


def test_openapi_documents_every_endpoint_with_examples_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations >= {
        ("/classify", "post"),
        ("/classify/batch", "post"),
        ("/rotate", "post"),
        ("/orbit", "post"),
        ("/models", "get"),
        ("/groups/{name}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    }
    assert ("/", "get") not in operations
    classify = schema["paths"]["/classify"]["post"]
    assert {"413", "415", "422", "503"} <= set(classify["responses"])
    assert "examples" in classify["responses"]["422"]["content"][PROBLEM]
    assert "Problem" in schema["components"]["schemas"]
    element = next(p for p in classify["parameters"] if p["name"] == "element")
    assert "s*N + k" in element["description"]


def test_swagger_ui_renders_from_the_service_itself(client: TestClient) -> None:
    """No CDN: every script and stylesheet /docs references is served here."""
    response = client.get("/docs")
    assert response.status_code == 200 and "swagger-ui" in response.text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", response.text)
    assert assets and all(url.startswith("/docs-assets/") for url in assets), assets
    for url in assets:
        assert client.get(url).status_code == 200
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text


def test_demo_page_is_served_when_present(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>demo</title>")
    monkeypatch.setattr(site, "STATIC_DIR", tmp_path)
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]


def test_missing_demo_page_is_a_404_problem(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(site, "STATIC_DIR", tmp_path / "absent")
    for path in ("/", "/static/app.js"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"] == PROBLEM


def test_evaluation_plot_is_served_from_the_weights_folder(
    client: TestClient, make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    response = client.get("/evaluation/accuracy_vs_angle.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).format == "PNG"
    missing = make_client(weights_dir=tmp_path).get("/evaluation/accuracy_vs_angle.png")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
