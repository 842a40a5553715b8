"""Graceful shutdown of the real service (app/shutdown.py): SIGTERM while 32 clients keep sending.

Each test starts ``python -m app.server`` as ``make serve`` does, on a free
loopback port, and sends only to 127.0.0.1; every client loop is bounded in time
and stops by itself. What a client can see of a request is one of: a complete
answer (200, or 503 ``shutting-down``), a refused connection, or a request lost
(a reset, a connection closed before the answer, an answer cut short). The drain
must lose none: what was read before the signal is answered in full, what comes
after is a 503 or refused, and the process exits 0, its decode processes gone.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.server import DRAIN_TIMEOUT_S
from bench.loadtest import digit_png, photo_png, process_tree
from tests.service_process import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LOGS = ROOT / "artifacts"
CLIENTS = 32
READY_WITHIN_S = 1.0  # /readyz answers 503 within this of the signal
BOUNDARY = "shutdown-test"


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def children(self) -> list[int]:
        """The decode processes (everything below the server)."""
        return [pid for pid in process_tree(self.process.pid) if pid != self.process.pid]


@contextmanager
def started_service(name: str, env: dict[str, str] | None = None) -> Iterator[Service]:
    """``python -m app.server`` on a free loopback port, ready; killed on exit if a test left it running."""
    port, log = free_port(), LOGS / f"shutdown-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "GCNN_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    service = Service(process, port, log)
    try:
        deadline = time.monotonic() + 120
        while get(port, "/readyz")[0] != 200:
            assert process.poll() is None, f"the service exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def get(port: int, path: str) -> tuple[int, str]:
    """``(status, problem type or "")`` of a GET on a new connection; status 0 when refused or lost."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except OSError:
        return 0, ""
    finally:
        connection.close()
    kind = json.loads(body).get("type", "") if response.status >= 400 else ""
    return response.status, str(kind).rsplit(":", 1)[-1]


def upload(data: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@dataclass
class Outcome:
    started: float  # time.monotonic() when the request was sent (before connecting, for a new connection)
    ended: float
    result: str  # "200", "503 shutting-down", "refused", or "lost: <what the client saw>"


class Client(threading.Thread):
    """Sends ``/classify`` on a keep-alive connection until its connection is refused or ``stop_at``.

    After a 503 it waits as ``Retry-After`` asks (``patient``), or sends again at once.
    """

    def __init__(self, port: int, body: bytes, stop_at: float, patient: bool = True) -> None:
        super().__init__(daemon=True)
        self.port, self.body, self.stop_at, self.patient = port, body, stop_at, patient
        self.outcomes: list[Outcome] = []

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        while time.monotonic() < self.stop_at:
            connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            started = time.monotonic()
            try:
                connection.request("POST", "/classify", body=self.body, headers=headers)
                response = connection.getresponse()
                body = response.read()  # IncompleteRead if the answer is cut short
                result = str(response.status)
                if response.status == 503:
                    result += " " + str(json.loads(body)["type"]).rsplit(":", 1)[-1]
                    result += "" if response.getheader("retry-after") == "1" else " without Retry-After"
                if response.will_close:
                    connection.close()
                    connection = None
            except ConnectionRefusedError:
                result, connection = "refused", None
            except (OSError, http.client.HTTPException) as error:
                result = f"lost: {type(error).__name__}: {error}"
                connection.close()
                connection = None
            self.outcomes.append(Outcome(started, time.monotonic(), result))
            if result == "refused":
                return
            if result.startswith("503") and self.patient:
                time.sleep(1.0)


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0() -> None:
    with started_service("load") as service:
        decode_processes = service.children()
        assert decode_processes, "the service should run decode processes"
        stop_at = time.monotonic() + 60
        bodies = [upload(digit_png()), upload(photo_png())]  # the photo (> 16 KiB) goes to a decode process
        clients = [Client(service.port, bodies[i % 2], stop_at) for i in range(CLIENTS)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while sum(o.result == "200" for c in clients for o in c.outcomes) < 4 * CLIENTS:
            assert time.monotonic() < deadline, "the load did not get going"
            time.sleep(0.05)

        signalled = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        readiness: list[tuple[float, int, str]] = []
        while service.process.poll() is None and time.monotonic() < signalled + DRAIN_TIMEOUT_S + 10:
            readiness.append((time.monotonic() - signalled, *get(service.port, "/readyz")))
            time.sleep(0.02)
        exit_code = service.process.wait(timeout=30)
        exited_after = time.monotonic() - signalled
        for client in clients:
            client.join(timeout=70)

    outcomes = [o for c in clients for o in c.outcomes]
    results = Counter(o.result for o in outcomes)
    in_flight = [o for o in outcomes if o.started < signalled < o.ended]
    print(
        f"\n{len(outcomes)} requests: {dict(results)}; {len(in_flight)} in flight at SIGTERM: "
        f"{dict(Counter(o.result for o in in_flight))}; exit {exit_code} {exited_after:.2f} s after SIGTERM; "
        f"readiness {[(round(t, 2), s, k) for t, s, k in readiness[:4]]}"
    )
    assert exit_code == 0, service.log.read_text()[-3000:]
    assert exited_after < DRAIN_TIMEOUT_S
    lost = [o.result for o in outcomes if o.result.startswith("lost")]
    assert lost == [], f"requests lost: {Counter(lost)}"
    assert set(results) <= {"200", "503 shutting-down", "refused"}, results
    # the drain answered what was in flight (among them decodes and inference queued behind others)
    assert sum(o.result == "200" for o in in_flight) > 0
    assert all(c.outcomes[-1].result == "refused" for c in clients), "after the drain, connections are refused"
    first_503 = next((t for t, status, _ in readiness if status == 503), None)
    assert first_503 is not None and first_503 < READY_WITHIN_S, readiness[:10]
    assert all(kind == "shutting-down" for _, status, kind in readiness if status == 503)
    assert all(status != 200 for _, status, _ in readiness), "/readyz answered 200 after SIGTERM"
    assert [pid for pid in decode_processes if Path(f"/proc/{pid}").exists()] == [], "decode processes left"


@contextmanager
def stalled_upload(port: int) -> Iterator[socket.socket]:
    """A ``POST /classify`` whose head is read and whose body never comes: a request the drain waits for."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n"
        )
        time.sleep(0.5)  # the head is read: the request is in
        yield connection


def reply(connection: socket.socket, within: float) -> bytes:
    """What the server sends on ``connection`` until it closes it (b"" for nothing, also after a reset)."""
    connection.settimeout(within)
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_the_drain_deadline_cuts_a_stalled_request_and_exits_1() -> None:
    with started_service("deadline", {"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "2"}) as service:
        decode_processes = service.children()
        with stalled_upload(service.port) as connection:
            signalled = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert service.process.poll() is None, "it drains: the stalled request is still open"
            assert get(service.port, "/readyz") == (503, "shutting-down")
            exit_code = service.process.wait(timeout=20)
            exited_after = time.monotonic() - signalled
            answer = reply(connection, 5)
    assert exit_code == 1
    assert 2 <= exited_after < 2 + 5, exited_after
    assert answer == b"", f"a request cut short gets no answer (never a 5xx): {answer[:200]!r}"
    assert [pid for pid in decode_processes if Path(f"/proc/{pid}").exists()] == []


def test_a_second_sigterm_ends_the_drain_at_once() -> None:
    with started_service("second-signal") as service, stalled_upload(service.port) as connection:
        service.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert service.process.poll() is None, "it drains: the stalled request is still open"
        second = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        exit_code = service.process.wait(timeout=20)
        exited_after = time.monotonic() - second
        assert reply(connection, 5) == b""
    assert exit_code == 1
    assert exited_after < 5, exited_after
