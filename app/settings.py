"""Service configuration, read from ``GCNN_*`` environment variables.

Routes receive the settings through :func:`get_settings` (a cached dependency);
tests override that dependency to run the app with other limits or weights.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_WEIGHTS_DIR", "Settings", "environment_settings", "get_settings"]

# Resolved from the package, not the working directory, so `uvicorn app.main:app`
# finds the shipped checkpoints from anywhere (and inside a container).
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every knob of the service; each field is ``GCNN_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GCNN_", extra="ignore", frozen=True)

    weights_dir: Path = Field(
        default=DEFAULT_WEIGHTS_DIR, description="Folder holding <name>.json cards and their weights."
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("cnn_seed", "gcnn_c8_canon_pose_wide_gated_max_x5"),
        description="Checkpoint names to load, comma-separated, in display order.",
    )
    max_upload_bytes: int = Field(
        default=5 * 1024 * 1024, gt=0, description="Largest accepted file, in bytes (413 above)."
    )
    max_pixels: int = Field(
        default=16_777_216,
        gt=0,
        description="Largest accepted image, width x height, checked before decoding (413 above).",
    )
    max_rotate_pixels: int = Field(
        default=4_194_304,
        gt=0,
        description="Largest image /rotate turns or mirrors, width x height, checked before decoding (413 above).",
    )
    max_batch: int = Field(
        default=16, gt=0, le=1024, description="Most files in one /classify/batch request (413 above)."
    )
    max_orbit: int = Field(default=72, gt=0, le=2000, description="Largest group order /orbit accepts (422 above).")
    torch_threads: int | None = Field(
        default=None,
        gt=0,
        le=256,
        description="Intra-op threads for torch; default: usable CPUs / WEB_CONCURRENCY - 1, at least 1.",
    )
    decode_processes: int | None = Field(
        default=None,
        gt=0,
        le=64,
        description="Decode processes for uploads that are not tiny (app/pictures/sandbox.py); default: usable CPUs.",
    )
    decode_budget_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Most seconds a decode process may spend on one image; past it the process is killed (422).",
    )
    decode_memory_bytes: int = Field(
        default=1 << 30,
        ge=256 << 20,
        description="Address-space limit of each decode process, in bytes (413 for an image that needs more).",
    )
    max_inflight_requests: int = Field(
        default=64, gt=0, description="Upload requests (POST) in flight at once; 503 + Retry-After beyond."
    )
    max_inflight_bytes: int = Field(
        default=160 * 1024 * 1024,
        gt=0,
        description="Sum of the declared bodies of the upload requests in flight, in bytes; 503 + Retry-After beyond.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request head (request line + headers), in bytes (431 above)."
    )
    max_headers: int = Field(default=100, gt=0, description="Most header lines in a request (431 above).")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a request's head, from its first byte (408)."
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds a client has to send a request's body, from the end of its head (408)."
    )
    keep_alive_s: int = Field(default=5, gt=0, description="Seconds an idle keep-alive connection stays open.")
    max_connections: int = Field(
        default=512, gt=0, description="Connections (and requests) served at once by a worker; 503 beyond."
    )
    log_level: LogLevel = "INFO"

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one model must be configured")
        for name in value:
            # names become file names under weights_dir: no separators, no dot-dot
            if not _MODEL_NAME.match(name) or ".." in name:
                raise ValueError(f"invalid model name {name!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"model names must be unique, got {value}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def resolved_decode_processes(self) -> int:
        """Decode processes: explicit, or one per usable CPU (they run beside the torch worker)."""
        return self.decode_processes if self.decode_processes is not None else _usable_cpus()

    def resolved_torch_threads(self) -> int:
        """The intra-op thread count: explicit, or this worker's share of the CPUs less one.

        uvicorn and gunicorn start ``WEB_CONCURRENCY`` worker processes; giving each
        all cores would oversubscribe the machine. Within a worker, the event loop
        needs a core too: an OpenMP team that competes with it spins at its barriers
        (measured on a 2-core box: 2 threads took a 7 ms inference to 100+ ms under
        load, 1 thread stayed at 7 ms). Hence ``cpus // workers - 1``, at least 1.
        """
        if self.torch_threads is not None:
            return self.torch_threads
        cpus = _usable_cpus()
        try:
            workers = max(1, int(os.environ.get("WEB_CONCURRENCY", "1")))
        except ValueError:
            logging.getLogger(__name__).warning("ignoring non-integer WEB_CONCURRENCY")
            workers = 1
        return max(1, cpus // workers - 1)


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@lru_cache
def environment_settings() -> Settings:
    """The settings of this process's environment, read once."""
    return Settings()


async def get_settings() -> Settings:
    """The settings, as a FastAPI dependency (tests override it).

    ``async`` so that FastAPI calls it on the event loop rather than on a worker thread.
    """
    return environment_settings()
