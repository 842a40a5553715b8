"""The container, really built and run: ``scripts/docker_smoke.sh`` under pytest, and ``docker stop`` under load.

The script builds the image, runs it with ``docker run`` and with docker-compose
(host networking, the only kind this machine allows), waits until healthy,
classifies an MNIST test digit with both models, checks that nothing in the
container runs as root, and stops everything. This test starts the Docker engine
with ``../shared/tools/docker-engine`` when none answers (and stops it again
afterwards), runs the script, and checks its JSON report. Then the image is
stopped with ``docker stop`` while 32 clients keep sending ``/classify``: the
drain of app/guard/shutdown.py, through the container (tests/drain_clients.py). Both
are skipped only where no engine can be started.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.guard.server import DRAIN_TIMEOUT_S
from app.guard.shutdown import AFTER_DRAIN_S
from tests.drain_clients import assert_drained, get, start_clients, watch_readiness
from tests.served_models import CNN, GCNN, SERVED_MODELS
from tests.service_process import free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT.parent / "shared" / "tools" / "docker-engine"
ARTIFACTS = ROOT / "artifacts"
MAX_IMAGE_BYTES = 1_500_000_000  # the target for an image with a CPU torch build
IMAGE = "equivariant-digits:smoke"  # what scripts/docker_smoke.sh builds
STOP_TIMEOUT_S = 30  # docker run --stop-timeout, as docs/deploy.md asks: above the drain deadline (DRAIN_TIMEOUT_S)


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[None]:
    """A Docker engine that answers: the running one, or one started with ../shared/tools/docker-engine."""
    if _engine_answers():
        yield
        return
    if not ENGINE.is_file():
        pytest.skip(f"no Docker engine answers and {ENGINE} (which starts one) is not there")
    started = time.monotonic()
    result = subprocess.run(["bash", str(ENGINE)], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0 or not _engine_answers():
        pytest.skip(f"no Docker engine could be started here: {ENGINE} said: {result.stderr.strip()[-600:]}")
    logger.info("started the Docker engine in %.0fs", time.monotonic() - started)
    try:
        yield
    finally:
        subprocess.run(["bash", str(ENGINE), "stop"], capture_output=True, timeout=120)


def _networks() -> set[tuple[str, str]]:
    listing = subprocess.run(
        ["docker", "network", "ls", "--format", "{{.Name}} {{.Driver}}"], capture_output=True, text=True, check=True
    ).stdout
    return {tuple(line.split(" ", 1)) for line in listing.splitlines() if line}  # type: ignore[misc]


def _smoke_containers() -> list[str]:
    listing = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout
    return [name for name in listing.split() if name.startswith(("equivariant-digits-smoke-", "edsmoke"))]


def test_container_and_compose_smoke(docker_engine: None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    report_path = ARTIFACTS / "docker_smoke.json"
    report_path.unlink(missing_ok=True)
    networks_before = _networks()
    env = {**os.environ, "SMOKE_REPORT": str(report_path), "DOCKER_ENGINE": str(ENGINE)}
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/docker_smoke.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=2300
    )
    elapsed = time.monotonic() - started
    (ARTIFACTS / "docker_smoke.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"scripts/docker_smoke.sh failed:\n{result.stderr[-4000:]}"
    logger.info("docker smoke test took %.0fs", elapsed)

    report = json.loads(report_path.read_text())
    assert 0 < report["image_bytes"] < MAX_IMAGE_BYTES, f"image is {report['image_bytes'] / 1e9:.2f} GB"
    assert report["image_user"] not in ("", "root", "0")
    for where in ("run", "compose"):
        part = report[where]
        api = part["api"]
        assert api["ready"]["models"] == list(SERVED_MODELS), where
        assert api["upright"] == {CNN: 7, GCNN: 7}, where
        assert api["turned_90"][GCNN] == 7, where
        assert api["page"]["status"] == 200 and api["page"]["has_title"], where
        assert part["process_uids"] and 0 not in part["process_uids"], where
        assert part["healthy_s"] >= part["ready_s"] > 0, where
        assert part["exit_code"] == 0, where
    host_config = report["compose"]["host_config"]
    assert host_config["network_mode"] == "host"
    assert host_config["nano_cpus"] > 0 and host_config["memory"] > 0 and host_config["restart"] == "unless-stopped"

    # Nothing left behind: no container of the smoke test, no new network (and never a bridge).
    assert _smoke_containers() == []
    new_networks = _networks() - networks_before
    assert new_networks == set(), f"the smoke test left networks behind: {new_networks}"


@pytest.fixture(scope="module")
def image(docker_engine: None) -> str:
    """The smoke test's image, built here (as the script builds it) when that test did not run first."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return IMAGE
    try:
        urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=5)
        index = os.environ.get("TORCH_INDEX_URL", "https://download.pytorch.org/whl/cpu")
    except OSError:
        index = ""  # as the script does: the default index (here, the local CPU wheel)
    build = ["docker", "build", "--network", "host", "--label", "equivariant-digits.smoke=1"]
    subprocess.run(
        [*build, "--build-arg", f"TORCH_INDEX_URL={index}", "-t", IMAGE, str(ROOT)], check=True, timeout=1800
    )
    return IMAGE


def test_docker_stop_under_load_answers_every_accepted_request_and_exits_0(image: str) -> None:
    port, name = free_port(), f"equivariant-digits-smoke-stop-{os.getpid()}"
    run = ["docker", "run", "-d", "--name", name, "--network", "host", "--cpus", "2", "--memory", "1536m"]
    settings = ["-e", "UVICORN_HOST=127.0.0.1", "-e", f"UVICORN_PORT={port}", "-e", "GCNN_TORCH_THREADS=1"]
    subprocess.run([*run, "--stop-timeout", str(STOP_TIMEOUT_S), *settings, image], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 180
        while get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the container was not ready in 180 s"
            time.sleep(0.2)
        clients = start_clients(port, seconds=90)
        signalled = time.monotonic()
        stop = subprocess.Popen(["docker", "stop", name], stdout=subprocess.DEVNULL)  # SIGTERM, SIGKILL after 30 s
        readiness = watch_readiness(port, lambda: stop.poll() is None, signalled, STOP_TIMEOUT_S + 10)
        stop.wait(timeout=STOP_TIMEOUT_S + 30)
        stopped_after = time.monotonic() - signalled
        for client in clients:
            client.join(timeout=100)
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name], capture_output=True, text=True)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    (ARTIFACTS / "docker_stop.log").write_text(logs)
    summary = assert_drained(clients, readiness, signalled)
    logger.info("docker stop: %s; stopped %.2f s after the signal", summary, stopped_after)
    assert int(state.stdout) == 0, f"exit code {state.stdout.strip()} (137: killed after the stop timeout)"
    assert stopped_after < DRAIN_TIMEOUT_S
    assert DRAIN_TIMEOUT_S + AFTER_DRAIN_S + 1 <= STOP_TIMEOUT_S, "a full drain and exit must fit before SIGKILL"
    assert "drained in" in logs
