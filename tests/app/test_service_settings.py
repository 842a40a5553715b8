"""Settings from the environment, torch threads, other model sets, and a degraded start."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import png_of, upload
from fastapi.testclient import TestClient
from pydantic import ValidationError

import app
from app.settings import DEFAULT_WEIGHTS_DIR, Settings
from tests.served_models import SERVED_MODELS


def test_settings_come_from_gcnn_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GCNN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("GCNN_MODELS", " cnn_seed, gcnn_c4_seed ,")
    monkeypatch.setenv("GCNN_MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("GCNN_MAX_PIXELS", "2000")
    monkeypatch.setenv("GCNN_MAX_BATCH", "4")
    monkeypatch.setenv("GCNN_TORCH_THREADS", "3")
    monkeypatch.setenv("GCNN_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.weights_dir == tmp_path and settings.models == ("cnn_seed", "gcnn_c4_seed")
    assert (settings.max_upload_bytes, settings.max_pixels, settings.max_batch) == (1000, 2000, 4)
    assert settings.resolved_torch_threads() == 3 and settings.log_level == "DEBUG"


@pytest.mark.parametrize("models", ["", "../secrets", "a/b", "cnn_seed,cnn_seed", ".."])
def test_bad_model_lists_are_refused(models: str) -> None:
    with pytest.raises(ValidationError):
        Settings(models=models)


@pytest.mark.parametrize("field", ["max_upload_bytes", "max_pixels", "max_batch", "torch_threads"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: 0})


def test_default_weights_are_the_shipped_ones_whatever_the_working_directory() -> None:
    assert Path(app.__file__).resolve().parent.parent / "weights" == DEFAULT_WEIGHTS_DIR
    assert (DEFAULT_WEIGHTS_DIR / "cnn_seed.json").is_file() and (DEFAULT_WEIGHTS_DIR / "gcnn_c8_wide.json").is_file()


@pytest.mark.parametrize(("cpus", "workers", "threads"), [(2, None, 1), (16, None, 15), (16, "4", 3), (2, "8", 1)])
def test_torch_threads_split_the_cpus_across_workers(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: str | None, threads: int
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))
    if workers is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", workers)
    assert Settings().resolved_torch_threads() == threads


def test_any_set_of_shipped_models_can_be_served(make_client: Callable[..., TestClient]) -> None:
    client = make_client(models=("gcnn_c4_seed", "cnn_seed", "gcnn_c8_wide"))
    assert client.get("/readyz").json()["models"] == ["gcnn_c4_seed", "cnn_seed", "gcnn_c8_wide"]
    body = client.post("/classify", files=upload(png_of(0))).json()
    assert [p["model"] for p in body["predictions"]] == ["gcnn_c4_seed", "cnn_seed", "gcnn_c8_wide"]
    assert client.get("/models").json()["models"][0]["group"] == "C4"


def corrupted_weights(tmp_path: Path) -> Path:
    for name in SERVED_MODELS:
        for suffix in (".json", ".safetensors"):
            shutil.copy(DEFAULT_WEIGHTS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    weights = tmp_path / f"{SERVED_MODELS[-1]}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern in the last tensor
    weights.write_bytes(bytes(data))
    return tmp_path


def test_corrupted_weights_keep_the_service_alive_but_not_ready(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(weights_dir=corrupted_weights(tmp_path))
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["content-type"] == "application/problem+json"
    assert "SHA-256 mismatch" in ready.json()["detail"] and str(tmp_path) not in ready.json()["detail"]
    classify = client.post("/classify", files=upload(png_of(1)))
    assert classify.status_code == 503 and classify.headers["Retry-After"] == "5"
    assert classify.json()["type"].endswith(":models-unavailable")
    assert client.get("/models").status_code == 503
    assert client.post("/rotate", files=upload(png_of(1)), params={"angle": 90}).status_code == 200
    assert "gcnn_ready 0.0" in client.get("/metrics").text


def test_missing_weights_folder_is_reported(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    client = make_client(weights_dir=tmp_path / "nowhere")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "does not exist" in ready.json()["detail"]
