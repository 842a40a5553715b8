"""The real service in its own process, as `make serve` runs it: ``python -m app.guard.server`` on a free loopback port.

Used by the tests that need real HTTP (the browser test, the attack suite); and the guarded server's
configuration for the tests that run it in their own process on a small app (``guarded_config``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from app.guard.server import GuardedProtocol

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def guarded_config(app: Any, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration of the guarded server (app/guard/server.py) for ``app`` in this process, on the
    loopback ``port``: asyncio's loop (its order of turns can be followed from Python), no lifespan."""
    return uvicorn.Config(
        app, host="127.0.0.1", port=port, http=GuardedProtocol, loop="asyncio", lifespan="off", log_level="warning",
        **options,
    )  # fmt: skip


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}; log:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service was not ready within {timeout:.0f}s; log:\n{log_path.read_text()[-3000:]}")


def start_server(port: int, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m app.guard.server`` on ``127.0.0.1:port`` as the README starts it, one torch thread, its output
    in ``log_path``; ``env`` adds ``GCNN_*`` settings. Not waited for: see :func:`running_service`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "GCNN_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.guard.server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def running_service(
    log_path: Path, env: dict[str, str] | None = None, timeout: float = 120.0
) -> Iterator[tuple[str, int]]:
    """``(base URL, server pid)`` of a started and ready service; stopped on exit. ``env`` adds ``GCNN_*`` settings."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(port, log_path, env)
    try:
        _wait_ready(base, process, log_path, timeout)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
