"""app.guard.server.GuardedProtocol on a real socket: what it answers a client that misbehaves at the HTTP level.

The protocol is served by uvicorn in a thread, in front of a three-route ASGI
app (no models: these tests are about the connection, not the answers), on a
free loopback port, with short limits so that every deadline is reached in
about a second.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from app.settings import environment_settings
from tests.service_process import free_port, guarded_config

HEADER_TIMEOUT_S, BODY_TIMEOUT_S, KEEP_ALIVE_S, MAX_HEAD, MAX_CONNECTIONS = 1.0, 2.0, 1, 4096, 4
SETTINGS = {
    "GCNN_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    "GCNN_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    "GCNN_MAX_HEADER_BYTES": str(MAX_HEAD),
}
SLACK_S = 1.5  # scheduling on a loaded 2-core machine
BIG = 64 << 20  # more than the kernel buffers on both ends of a loopback connection


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /ok``; ``POST /echo`` reads the whole body and answers its length; ``POST /early`` answers
    503 without reading the body (as the admission middleware does); ``GET /big`` answers 64 MiB."""
    body = b"b" * BIG if scope["path"] == "/big" else b"ok"
    if scope["path"] == "/echo":
        length, more = 0, True
        while more:
            message = await receive()
            length, more = length + len(message.get("body", b"")), message.get("more_body", False)
        body = str(length).encode()
    status = 503 if scope["path"] == "/early" else 200
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    saved = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(SETTINGS)
    environment_settings.cache_clear()
    port = free_port()
    config = guarded_config(app, port, timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        environment_settings.cache_clear()


def connect(address: tuple[str, int]) -> socket.socket:
    connection = socket.create_connection(address)
    connection.settimeout(HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 2 * SLACK_S)
    return connection


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += connection.recv(65536)
    return int(lines[0].split()[1]), headers, body


def closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (after any answer it writes) within ``seconds``."""
    connection.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if connection.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def problem_type(headers: dict[str, str], body: bytes) -> str:
    assert headers["content-type"] == "application/problem+json"
    return str(json.loads(body)["type"]).rsplit(":", 1)[-1]


def test_an_unparseable_request_gets_a_400_problem(address: tuple[str, int]) -> None:
    with connect(address) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
        status, headers, body = read_response(connection)
        assert status == 400 and problem_type(headers, body) == "bad-request"


def test_a_chunked_upload_within_the_limits_is_read_whole(address: tuple[str, int]) -> None:
    chunks = b"".join(b"%x\r\n%s\r\n" % (size, b"a" * size) for size in [1, 1000, 65536] * 20)
    with connect(address) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        connection.sendall(chunks + b"0\r\nX-Checksum: 1\r\n\r\n")
        assert read_response(connection)[::2] == (200, str(20 * 66537).encode())


def test_a_huge_chunked_trailer_is_refused_with_431(address: tuple[str, int]) -> None:
    # before the limit, the parser kept the trailer whole: a 25 MB one took 2.4 s of event-loop CPU
    with connect(address) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: ")
        started = time.monotonic()
        try:
            for _ in range(256):  # up to 16 MiB
                connection.sendall(b"t" * 65536)
        except OSError:
            pass  # closed by the server: what we want
        status, headers, body = read_response(connection)
        assert status == 431 and problem_type(headers, body) == "headers-too-large"
        assert time.monotonic() - started < SLACK_S


def test_bare_line_ends_after_an_answer_do_not_keep_a_connection_open(address: tuple[str, int]) -> None:
    # a line end is no request, so it starts no parser callback: it used to cancel the keep-alive timer for good
    with connect(address) as connection:
        connection.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(connection)[0] == 200
        connection.sendall(b"\r\n")
        assert closed_within(connection, HEADER_TIMEOUT_S + SLACK_S)


def test_an_answer_before_the_body_still_leaves_a_deadline_on_the_connection(address: tuple[str, int]) -> None:
    # the body that drains after an early 503 cancelled the keep-alive timer; nothing re-armed it
    with connect(address) as connection:
        connection.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
        assert read_response(connection)[0] == 503
        for _ in range(3):
            connection.sendall(b"b" * 1000)
            time.sleep(0.1)
        assert closed_within(connection, KEEP_ALIVE_S + SLACK_S)


def test_over_the_connection_limit_the_answer_is_a_problem_with_retry_after(address: tuple[str, int]) -> None:
    idle = [connect(address) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # let the server accept them
        with connect(address) as connection:
            connection.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(connection)
        assert status == 503 and problem_type(headers, body) == "overloaded" and headers["retry-after"] == "1"
    finally:
        for connection in idle:
            connection.close()
    time.sleep(0.2)
    with connect(address) as connection:  # served again once the others are gone
        connection.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(connection)[0] == 200


def test_an_answer_the_client_does_not_read_is_dropped_not_held(address: tuple[str, int]) -> None:
    # the app is done and its admission slot free: the unread bytes sat in the transport's buffer for good
    with connect(address) as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        connection.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(KEEP_ALIVE_S + BODY_TIMEOUT_S + SLACK_S)  # reading nothing meanwhile
        received = 0
        connection.settimeout(5)
        try:
            while chunk := connection.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < BIG // 2, received
