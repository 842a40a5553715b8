"""Serving the app: uvicorn with the limits it lacks for slow and hostile clients.

    python -m app.guard.server --host 127.0.0.1 --port 8000     # what `make serve` and the container run

uvicorn's HTTP/1.1 protocol (httptools) puts no bound on a request's head and
no deadline on a client that trickles it in. :class:`GuardedProtocol` adds them,
from the ``GCNN_*`` settings (:class:`app.settings.Settings`):

- the head (request line and headers) may hold ``max_header_bytes`` bytes and
  ``max_headers`` lines: beyond, ``431`` and the connection closes (what the
  parser buffers meanwhile is at most the limit plus one read); so may what
  follows the head that is not body: chunk-size lines beyond their own length,
  chunk extensions, trailers, and bytes between requests;
- the head must arrive within ``header_timeout_s`` of the connection opening or
  of the request's first byte, and the body within ``body_timeout_s`` of the
  head's end: past either, ``408`` (when nothing was answered yet) and close;
- a connection is never without a deadline: bytes that arrive while no request
  is open (even bare line ends) start the head deadline, and an idle keep-alive
  connection closes after ``keep_alive_s``; an answer the client does not read
  is dropped ``body_timeout_s`` after that (the connection is reset) rather than
  held in memory;
- at most ``max_connections`` connections or requests are served at once:
  beyond, ``503`` with ``Retry-After``;
- once the server drains (``SIGTERM``, :mod:`app.guard.shutdown`), a request read from
  then on gets ``503 shutting-down`` with ``Retry-After`` (``/readyz`` included;
  ``/healthz`` and ``/metrics`` are still answered), and every connection closes
  after its answer.

Those answers, and the ``400`` for HTTP the parser rejects, are written by the
protocol as ``application/problem+json`` with the types of :mod:`app.guard.problems`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import httptools
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from app.guard.problems import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    OVERLOADED,
    PROBLEM_MEDIA_TYPE,
    REQUEST_TIMEOUT,
    RETRY_AFTER_S,
    SHUTTING_DOWN,
    ProblemType,
)
from app.guard.shutdown import DrainingServer
from app.settings import environment_settings

__all__ = ["GuardedProtocol", "main"]

logger = logging.getLogger("app.guard.server")  # not __name__: this module also runs as __main__

ANSWERED_WHILE_DRAINING = (b"/healthz", b"/metrics")  # a liveness probe must not kill a replica that drains
DRAIN_READ_BYTES = 1 << 20  # how much of a refused request's body is read before the 503 (see _shutting_down)
DRAIN_TIMEOUT_S = 20.0  # from SIGTERM to the end of the drain (docs/deploy.md: what it fits in)
# GuardedProtocol and app.guard.shutdown.DrainingServer build on uvicorn's private internals: the releases they were
# tested on (pinned in pyproject.toml; tests/app/test_uvicorn_internals.py fails when those internals change)
TESTED_RELEASES = {"uvicorn": "0.55.", "httptools": "0.9."}


class _HeadTooLargeError(Exception):
    """Raised from a parser callback: the request head has too many lines."""


@dataclass
class _AfterHead:
    """Bytes since the request head ended: on the wire, of body, and of the chunk-size lines."""

    wire: int = 0
    body: int = 0
    chunk: int = 0  # body bytes of the chunk being read
    framing: int = 0  # the size lines and line ends of the chunks read so far, at their shortest

    def close_chunk(self) -> None:
        self.framing += len(f"{self.chunk:x}") + 4  # "<size>\r\n" ... "\r\n"
        self.chunk = 0

    @property
    def overhead(self) -> int:
        """What the parser may be holding that is neither body nor framing: extensions, trailers, junk."""
        return self.wire - self.body - self.framing


async def _over_connection_limit(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer beyond ``max_connections``: a ``503 overloaded`` problem with ``Retry-After``."""
    await _send_unavailable(send, OVERLOADED, "the server is at its limit of connections; retry in a second")


async def _shutting_down(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer to a request read while the server drains: ``503 shutting-down`` with ``Retry-After``.

    Sent once the body is in (up to ``DRAIN_READ_BYTES``): the connection closes after the
    answer, and a client still sending when it closes would read a reset, not the answer.
    """
    read, more = 0, True
    while more and read <= DRAIN_READ_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        read, more = read + len(message.get("body", b"")), message.get("more_body", False)
    await _send_unavailable(send, SHUTTING_DOWN, "this replica is shutting down; retry (another will answer)")


async def _send_unavailable(send: Any, problem: ProblemType, detail: str) -> None:
    """A 503 ``problem`` with ``Retry-After``, through uvicorn's cycle; the connection closes after it."""
    body = _problem_body(problem, detail)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem_body(problem: ProblemType, detail: str) -> bytes:
    return json.dumps(
        {"type": problem.uri, "title": problem.title, "status": problem.status, "detail": detail}
    ).encode()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and read deadlines (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = environment_settings()
        self.max_head_bytes, self.max_header_lines = settings.max_header_bytes, settings.max_headers
        self.head_timeout, self.body_timeout = settings.header_timeout_s, settings.body_timeout_s
        self._in_head, self._head_bytes, self._header_lines, self._parsed_head = True, 0, 0, 0
        self._after_head = _AfterHead()
        self._deadline: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, "head")  # a connection that never sends a request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(self.head_timeout, "head")  # bytes of a next request (or junk): it must arrive in time
        if self._in_head:  # bytes held for a head that has not ended: bounds the parser's buffer
            self._head_bytes += len(data)
        else:
            self._after_head.wire += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does (no websockets are served)
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _HeadTooLargeError):
                self._refuse(HEADERS_TOO_LARGE, str(error.__context__))
            else:
                self._refuse(BAD_REQUEST, f"the server cannot parse the request: {error}")
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(HEADERS_TOO_LARGE, f"the request head is over {self.max_head_bytes} bytes")
        elif not self._in_head and self._after_head.overhead > self.max_head_bytes:
            self._refuse(
                HEADERS_TOO_LARGE,
                f"over {self.max_head_bytes} bytes after the request head are neither body nor chunk sizes"
                " (chunk extensions, trailers)",
            )

    def send_400_response(self, msg: str) -> None:
        """uvicorn's plain-text 400 (for a request it cannot parse), as a problem."""
        self._refuse(BAD_REQUEST, msg)

    # -- parser callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_lines, self._parsed_head = True, 0, 0
        self._arm(self.head_timeout, "head")

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.max_header_lines:
            raise _HeadTooLargeError(f"the request has more than {self.max_header_lines} header lines")
        self._count_head(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        """What the parser has passed on so far; a head that ends inside one read is measured here."""
        self._parsed_head += size
        if self._parsed_head > self.max_head_bytes:
            raise _HeadTooLargeError(f"the request head is over {self.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._after_head = False, 0, _AfterHead()
        self._arm(self.body_timeout, "body")
        if getattr(self.server_state, "draining", False):  # app.guard.shutdown.DrainState
            if self.url.split(b"?", 1)[0] in ANSWERED_WHILE_DRAINING:
                super().on_headers_complete()
            else:
                self._answer_with(_shutting_down)
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return
        limit = self.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().on_headers_complete()
            return
        # uvicorn would answer its plain-text 503 here; answer the problem, with Retry-After, instead
        logger.warning("over %d connections or requests: 503 to %s", limit, self.client)
        self._answer_with(_over_connection_limit)

    def _answer_with(self, app: Any) -> None:
        """Start this request's cycle with ``app`` in place of the service (and no concurrency check)."""
        service, self.app, limit, self.limit_concurrency = self.app, app, self.limit_concurrency, None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = service, limit

    def on_body(self, body: bytes) -> None:
        self._after_head.body += len(body)
        self._after_head.chunk += len(body)
        super().on_body(body)

    def on_chunk_complete(self) -> None:
        self._after_head.close_chunk()

    def on_message_complete(self) -> None:
        self._disarm()  # the request is in: how long the app takes is not the client's doing
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:  # answered before its body had drained
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # -- deadlines and refusals --------------------------------------------------------------------
    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, seconds, part)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, seconds: float, part: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self._refuse(REQUEST_TIMEOUT, f"the request {part} did not arrive within {seconds:g} s")

    def _refuse(self, problem: ProblemType, detail: str) -> None:
        """Answer ``problem`` and close the connection (no request reaches the app).

        When this request was answered already (a 503 while its body drains), or an
        earlier pipelined answer is still being written, the connection only closes.
        """
        logger.warning("%s from %s: %s", problem.title, self.client, detail)
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not (self._in_head and cycle.response_complete):
            self._end(cycle)
            return
        body = _problem_body(problem, detail)
        head = (
            f"HTTP/1.1 {problem.status} {problem.title}\r\ncontent-type: {PROBLEM_MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self._end(cycle)

    def _end(self, cycle: RequestResponseCycle | None) -> None:
        if cycle is not None:
            cycle.disconnected = True  # a request already in the app (a body timeout) reads a disconnect
            cycle.message_event.set()
        self._close()
        self._disarm()

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self._close()

    def _close(self) -> None:
        """Close after what is buffered is sent; reset the connection if the client has not read it
        within ``body_timeout_s`` (a /rotate answer can be megabytes)."""
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self.loop.call_later(self.body_timeout, self._drop_unread)

    def _drop_unread(self) -> None:
        if self.transport.get_write_buffer_size():
            logger.warning(
                "%d bytes not read by %s: connection reset", self.transport.get_write_buffer_size(), self.client
            )
            self.transport.abort()


def untested_releases() -> list[str]:
    """``"<name> <version>"`` for each of uvicorn and httptools installed in a release other than the one tested."""
    installed = {name: metadata.version(name) for name in TESTED_RELEASES}
    return [
        f"{name} {installed[name]}"
        for name, prefix in TESTED_RELEASES.items()
        if not installed[name].startswith(prefix)
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("UVICORN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("UVICORN_PORT", "8000")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes, each with its own models (default $WEB_CONCURRENCY or 1)",
    )
    parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from --forwarded-allow-ips")
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=float(os.environ.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", DRAIN_TIMEOUT_S)),
        help=f"most seconds from SIGTERM to the end of the drain (default $UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN or "
        f"{DRAIN_TIMEOUT_S:g}; app/guard/shutdown.py)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if untested := untested_releases():
        tested = ", ".join(f"{name} {prefix}x" for name, prefix in TESTED_RELEASES.items())
        sys.exit(f"app.guard.server was tested with {tested}, not {', '.join(untested)}: its limits for slow and "
                 "hostile clients build on their internals (install the pinned releases: pip install -e .)"
                 )  # fmt: skip
    settings = environment_settings()
    config = uvicorn.Config(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=GuardedProtocol,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=math.ceil(args.timeout_graceful_shutdown),
        access_log=False,  # the app writes its own structured access log (logger app.access)
    )
    if args.workers > 1:  # uvicorn's supervisor and its workers' own shutdown (app/guard/shutdown.py: not drained)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    config.load_app()
    server = DrainingServer(config, args.timeout_graceful_shutdown)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
    sys.exit(server.exit_code)


if __name__ == "__main__":
    main()
