"""Clients that keep sending ``/classify`` while a service is stopped, and what a drain must show them.

Used by the graceful-shutdown tests of the process (tests/app/test_shutdown.py)
and of the container (tests/test_docker.py). Loopback only; every loop is bounded
in time. What a client can see of a request is one of: a complete answer (200, or
503 ``shutting-down``), a refused connection, or a request lost (a reset, a
connection closed before the answer, an answer cut short).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.loadtest import digit_png, photo_png

CLIENTS = 32
READY_WITHIN_S = 1.0  # /readyz answers 503 within this of the signal
BOUNDARY = "shutdown-test"
Readiness = list[tuple[float, int, str]]  # (seconds after the signal, status, problem type) of GET /readyz


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
    fresh: bool = True  # sent on a new connection (else on a kept-alive one)


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
        while time.monotonic() < self.stop_at:
            fresh = connection is None
            connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            started = time.monotonic()
            result, keep = self._send(connection)
            if not keep:
                connection.close()
                connection = None
            self.outcomes.append(Outcome(started, time.monotonic(), result, fresh))
            if result == "refused":
                return
            if result.startswith("503") and self.patient:
                time.sleep(1.0)

    def _send(self, connection: http.client.HTTPConnection) -> tuple[str, bool]:
        """What became of one request, and whether its connection stays open."""
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        try:
            connection.request("POST", "/classify", body=self.body, headers=headers)
            response = connection.getresponse()
            body = response.read()  # IncompleteRead if the answer is cut short
        except ConnectionRefusedError:
            return "refused", False
        except (OSError, http.client.HTTPException) as error:
            return f"lost: {type(error).__name__}: {error}", False
        result = str(response.status)
        if response.status == 503:
            result += " " + str(json.loads(body)["type"]).rsplit(":", 1)[-1]
            result += "" if response.getheader("retry-after") == "1" else " without Retry-After"
        return result, not response.will_close


def start_clients(port: int, seconds: float, patient: bool = True) -> list[Client]:
    """``CLIENTS`` clients, half sending a 28x28 digit, half a 300x300 photo (> 16 KiB: a decode process's)."""
    stop_at = time.monotonic() + seconds
    bodies = [upload(digit_png()), upload(photo_png())]
    clients = [Client(port, bodies[i % 2], stop_at, patient) for i in range(CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 60
    while sum(o.result == "200" for c in clients for o in c.outcomes) < 4 * CLIENTS:
        assert time.monotonic() < deadline, "the load did not get going"
        time.sleep(0.05)
    return clients


def watch_readiness(port: int, running: Callable[[], bool], signalled: float, seconds: float) -> Readiness:
    """``GET /readyz`` every 20 ms while ``running()``, for at most ``seconds`` after the signal."""
    readiness: Readiness = []
    while running() and time.monotonic() < signalled + seconds:
        readiness.append((time.monotonic() - signalled, *get(port, "/readyz")))
        time.sleep(0.02)
    return readiness


def assert_drained(clients: Sequence[Client], readiness: Readiness, signalled: float) -> str:
    """What a drain must show the clients (module docstring); returns a one-line summary."""
    outcomes = [o for c in clients for o in c.outcomes]
    results = Counter(o.result for o in outcomes)
    in_flight = [o for o in outcomes if o.started < signalled < o.ended]
    summary = (
        f"{len(outcomes)} requests: {dict(results)}; {len(in_flight)} in flight at the signal: "
        f"{dict(Counter(o.result for o in in_flight))}; readiness {[(round(t, 2), s, k) for t, s, k in readiness[:3]]}"
    )
    lost = [o for o in outcomes if o.result.startswith("lost")]
    when = [(round(o.started - signalled, 3), round(o.ended - signalled, 3), o.fresh) for o in lost]
    assert lost == [], (
        f"requests lost: {Counter(o.result for o in lost)} (sent, ended, new connection): {when}; {summary}"
    )
    assert set(results) <= {"200", "503 shutting-down", "refused"}, summary
    # the drain answered what was in flight (among them decodes and inference queued behind others)
    assert sum(o.result == "200" for o in in_flight) > 0, summary
    assert all(c.outcomes[-1].result == "refused" for c in clients), (
        f"after the drain, connections are refused: {summary}"
    )
    first_503 = next((t for t, status, _ in readiness if status == 503), None)
    assert first_503 is not None and first_503 < READY_WITHIN_S, readiness[:10]
    assert all(kind == "shutting-down" for _, status, kind in readiness if status == 503), readiness
    # from the first 503 on, never ready again (with `docker stop` the signal arrives some ms after the command)
    assert all(status != 200 for t, status, _ in readiness if t > first_503), f"ready again: {readiness}"
    return summary
