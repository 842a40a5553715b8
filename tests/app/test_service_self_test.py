"""The readiness self-test runs every model the way a request does, its orientation included."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import png_of, upload
from fastapi.testclient import TestClient

from app.answering.inference import LoadedModel, self_test
from model.checkpoint import load_checkpoint, save_checkpoint
from model.networks import GroupEquivariantCNN

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
POSE = "gcnn_c8_pose"


def pose_model_with(damage: Callable[[GroupEquivariantCNN], None]) -> tuple[GroupEquivariantCNN, dict]:
    model, card = load_checkpoint(WEIGHTS / f"{POSE}.json")
    assert isinstance(model, GroupEquivariantCNN)
    with torch.no_grad():
        damage(model)
    return model, card


def nan_pose_head(model: GroupEquivariantCNN) -> None:
    model.head.pose.fill_(math.nan)  # type: ignore[union-attr, operator]


def test_the_self_test_fails_on_a_pose_head_that_answers_nan() -> None:
    model, card = pose_model_with(nan_pose_head)
    with pytest.raises(RuntimeError, match=f"self-test failed for {POSE}"):
        self_test([LoadedModel(POSE, model, card)])


def test_the_self_test_passes_the_shipped_pose_model() -> None:
    model, card = load_checkpoint(WEIGHTS / f"{POSE}.json")
    self_test([LoadedModel(POSE, model, card)])


def test_a_nan_pose_head_keeps_the_service_unready_and_its_requests_get_503(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    model, card = pose_model_with(nan_pose_head)
    keep = {key: value for key, value in card.items() if key not in {"name", "architecture", "config", "sha256"}}
    save_checkpoint(model, tmp_path, POSE, keep)
    client = make_client(weights_dir=tmp_path, models=(POSE,))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and f"self-test failed for {POSE}" in ready.json()["detail"], ready.text
    answer = client.post("/classify", files=upload(png_of(7)))
    assert answer.status_code == 503 and answer.headers["content-type"] == "application/problem+json", answer.text
