"""Which way the digit is turned, through the API: orientation, readings, ambiguity, the prior, the upright image."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pytest
from conftest import encode, mnist_like, png_of, upload
from fastapi.testclient import TestClient
from PIL import Image

from model.groups import get_group
from tests.helpers import turned_by
from tests.served_models import CNN, GCNN


def prediction(body: dict, model: str) -> dict:
    return next(p for p in body["predictions"] if p["model"] == model)


def test_the_gcnn_says_how_the_digit_is_turned_and_the_cnn_does_not(client: TestClient) -> None:
    body = client.post("/classify", files=upload(png_of(7))).json()
    gcnn, cnn = prediction(body, GCNN), prediction(body, CNN)
    assert body["orientation_prior"] == "none"
    assert 0 <= gcnn["orientation"]["degrees"] < 360 and 0 < gcnn["orientation"]["confidence"] <= 1
    assert abs(turned_by(gcnn["orientation"]["degrees"], 0.0)) <= 22.5  # an upright 7 reads as about upright
    assert 1 <= len(gcnn["readings"]) <= 3 and gcnn["readings"][0]["digit"] == gcnn["digit"] == 7
    assert gcnn["readings"][0]["degrees"] == gcnn["orientation"]["degrees"]  # the answered reading comes first
    probabilities = [r["probability"] for r in gcnn["readings"]]
    assert probabilities[1:] == sorted(probabilities[1:], reverse=True) and sum(probabilities) <= 1.0 + 1e-6
    assert cnn["orientation"] is None and cnn["readings"] == [] and cnn["ambiguous"] is False


@pytest.mark.parametrize("element", [2, 4, 6])
def test_a_quarter_turn_moves_the_orientation_by_exactly_its_angle(client: TestClient, element: int) -> None:
    upright = prediction(client.post("/classify", files=upload(png_of(4))).json(), GCNN)
    params = {"group": "C8", "element": element}
    turned = prediction(client.post("/classify", files=upload(png_of(4)), params=params).json(), GCNN)
    moved = turned_by(turned["orientation"]["degrees"], upright["orientation"]["degrees"])
    expected = turned_by(get_group("C8").degrees(element), 0.0)
    assert abs(moved - expected) <= 0.02  # answered to 2 decimals; exact otherwise
    assert turned["digit"] == upright["digit"] and turned["probabilities"] == upright["probabilities"]


def test_the_orbit_rows_carry_an_orientation_that_follows_the_element(client: TestClient) -> None:
    body = client.post("/orbit", files=upload(png_of(2)), params={"group": "C4"}).json()
    angles = [next(p for p in row["predictions"] if p["model"] == GCNN)["orientation_degrees"] for row in body["rows"]]
    for k, angle in enumerate(angles):
        assert abs(turned_by(angle, angles[0]) - turned_by(90.0 * k, 0.0)) <= 0.02, angles
    assert all(
        p["orientation_degrees"] is None for row in body["rows"] for p in row["predictions"] if p["model"] == CNN
    )


def test_upright_image_is_the_input_turned_back(client: TestClient) -> None:
    params = {"group": "C8", "element": 2, "return_image": True}
    body = client.post("/classify", files=upload(png_of(7)), params=params).json()
    gcnn, cnn = prediction(body, GCNN), prediction(body, CNN)
    assert cnn["upright_image"] is None
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(gcnn["upright_image"]))))
    upright_input = mnist_like(7).astype(np.float32)
    turned_input = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"])))).astype(np.float32)
    # turned back by the estimate (about 90 degrees), the image is much closer to the upright digit than before
    assert np.abs(image - upright_input).mean() < 0.6 * np.abs(turned_input - upright_input).mean()


def test_upright_prior_is_a_soft_weight_and_other_values_are_refused(client: TestClient) -> None:
    body = client.post("/classify", files=upload(png_of(5)), params={"orientation_prior": "upright"}).json()
    assert body["orientation_prior"] == "upright" and prediction(body, GCNN)["digit"] == 5
    # a clear digit turned by 135 degrees is still read under the upright prior: soft, not a cut
    turned = client.post(
        "/classify", files=upload(png_of(5)), params={"orientation_prior": "upright", "angle": 135}
    ).json()
    assert prediction(turned, GCNN)["digit"] == 5
    for path in ("/classify", "/classify/batch", "/orbit"):
        field = "files" if path.endswith("batch") else "file"
        files = {field: ("d.png", png_of(5), "image/png")}
        response = client.post(path, files=files, params={"orientation_prior": "sideways"})
        assert response.status_code == 422 and response.json()["type"].endswith(":validation-error"), path


def test_batch_answers_carry_orientation_per_item(client: TestClient) -> None:
    files = [("files", (f"{d}.png", png_of(d), "image/png")) for d in (6, 9)]
    body = client.post("/classify/batch", files=files, params={"orientation_prior": "upright"}).json()
    assert body["orientation_prior"] == "upright"
    for item, digit in zip(body["items"], (6, 9), strict=True):
        gcnn = prediction(item, GCNN)
        assert gcnn["digit"] == digit and gcnn["orientation"] is not None


def test_a_six_turned_by_half_a_turn_is_read_right_or_flagged(client: TestClient) -> None:
    for digit in (6, 9):
        params = {"group": "C8", "element": 4}
        body = client.post("/classify", files=upload(encode(mnist_like(digit))), params=params).json()
        gcnn = prediction(body, GCNN)
        readings = [r["digit"] for r in gcnn["readings"]]
        assert gcnn["digit"] == digit or (gcnn["ambiguous"] and digit in readings), gcnn


@pytest.mark.parametrize("digit", [6, 9])
def test_the_upright_prior_is_about_the_upload_whichever_way_the_service_turns_it(
    client: TestClient, digit: int
) -> None:
    # the upload is upright; the service turns it by quarter turns (exact): the prior turns with it,
    # so every answer equals the untouched upload's (before, a 6 turned by 180 degrees was pushed to a 9)
    image, params = encode(mnist_like(digit)), {"orientation_prior": "upright"}
    upright = prediction(client.post("/classify", files=upload(image), params=params).json(), GCNN)
    turned = client.post("/classify", files=upload(image), params={**params, "group": "C4", "element": 2}).json()
    assert prediction(turned, GCNN)["probabilities"] == upright["probabilities"]
    orbit = client.post("/orbit", files=upload(image), params={**params, "group": "C4"}).json()
    for row in orbit["rows"]:
        assert next(p for p in row["predictions"] if p["model"] == GCNN)["digit"] == upright["digit"] == digit


@pytest.mark.parametrize("angle", [0.0, 30.0, 135.0, 200.0])
def test_every_answer_is_its_first_reading_and_the_flag_is_raised_by_a_listed_reading(
    client: TestClient, angle: float
) -> None:
    files = [("files", (f"{d}.png", png_of(d), "image/png")) for d in range(10)]
    body = client.post("/classify/batch", files=files, params={"angle": angle})
    assert body.status_code == 200, body.text
    for item in body.json()["items"]:
        gcnn = prediction(item, GCNN)
        first = gcnn["readings"][0]
        assert (first["digit"], first["degrees"]) == (gcnn["digit"], gcnn["orientation"]["degrees"])
        rivals = [r for r in gcnn["readings"][1:] if r["digit"] != gcnn["digit"]]
        assert gcnn["ambiguous"] == any(r["probability"] >= 0.1 * first["probability"] for r in rivals), gcnn


def test_the_canonicalising_model_s_orientation_follows_a_turn_between_quarter_turns(
    make_client: Callable[..., TestClient],
) -> None:
    """Served beside gcnn_c8_pose (GCNN_MODELS), the shipped gcnn_c8_canon_pose reads digits turned through the
    service's ``angle`` as it reads them upright, and its orientation moves with the turn."""
    canonical, grid = "gcnn_c8_canon_pose", "gcnn_c8_pose"
    client = make_client(models=(grid, canonical))
    worst = {grid: 0.0, canonical: 0.0}
    for digit in (5, 7):
        upright = client.post("/classify", files=upload(png_of(digit))).json()
        for angle in (22.5, 45.0, 67.5):
            turned = client.post("/classify", files=upload(png_of(digit)), params={"angle": angle}).json()
            for model in worst:
                before, after = prediction(upright, model), prediction(turned, model)
                assert after["digit"] == digit
                moved = turned_by(after["orientation"]["degrees"], before["orientation"]["degrees"])
                worst[model] = max(worst[model], abs(moved - angle))
    # measured before the canonicalising model's lean was chosen (both at lean 1): within 3.4°, gcnn_c8_pose's 20.3°
    assert worst[canonical] <= 6.0 and worst[grid] > 2 * worst[canonical]
