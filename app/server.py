"""Serving the app: uvicorn with the limits it lacks for slow and hostile clients.

    python -m app.server --host 127.0.0.1 --port 8000     # what `make serve` and the container run

uvicorn's HTTP/1.1 protocol (httptools) puts no bound on a request's head and
no deadline on a client that trickles it in. :class:`GuardedProtocol` adds them,
from the ``GCNN_*`` settings (:class:`app.settings.Settings`):

- the head (request line and headers) may hold ``max_header_bytes`` bytes and
  ``max_headers`` lines: beyond, ``431`` and the connection closes (what the
  parser buffers meanwhile is at most the limit plus one read);
- the head must arrive within ``header_timeout_s`` of the connection opening or
  of the request's first byte, and the body within ``body_timeout_s`` of the
  head's end: past either, ``408`` (when nothing was answered yet) and close;
- an idle keep-alive connection closes after ``keep_alive_s``, and at most
  ``max_connections`` connections are served at once (503 beyond).

Those answers are written by the protocol, before the app sees a request, as
``application/problem+json`` with the types of :mod:`app.problems`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.problems import HEADERS_TOO_LARGE, PROBLEM_MEDIA_TYPE, REQUEST_TIMEOUT, ProblemType
from app.settings import environment_settings

__all__ = ["GuardedProtocol", "main"]

logger = logging.getLogger("app.server")  # not __name__: this module also runs as __main__


class _HeadTooLargeError(Exception):
    """Raised from a parser callback: the request head has too many lines."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and read deadlines (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = environment_settings()
        self.max_head_bytes, self.max_header_lines = settings.max_header_bytes, settings.max_headers
        self.head_timeout, self.body_timeout = settings.header_timeout_s, settings.body_timeout_s
        self._in_head, self._head_bytes, self._header_lines, self._parsed_head = True, 0, 0, 0
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
        if self._in_head:  # bytes held for a head that has not ended: bounds the parser's buffer
            self._head_bytes += len(data)
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
                logger.warning("invalid HTTP request received")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(HEADERS_TOO_LARGE, f"the request head is over {self.max_head_bytes} bytes")

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
        self._in_head, self._head_bytes = False, 0
        self._arm(self.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()  # the request is in: how long the app takes is not the client's doing
        super().on_message_complete()

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
        if self.cycle is not None and self.cycle.response_started:  # answered already (a 503 while the body drains)
            self.transport.close()
            return
        self._refuse(REQUEST_TIMEOUT, f"the request {part} did not arrive within {seconds:g} s")

    def _refuse(self, problem: ProblemType, detail: str) -> None:
        """Answer ``problem`` and close the connection (no request reaches the app)."""
        logger.warning("%s from %s: %s", problem.title, self.client, detail)
        body = json.dumps({"type": problem.uri, "title": problem.title, "status": problem.status, "detail": detail})
        head = (
            f"HTTP/1.1 {problem.status} {problem.title}\r\ncontent-type: {PROBLEM_MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
        )
        if self.cycle is not None:
            self.cycle.disconnected = True  # a request already in the app (a body timeout) reads a disconnect
            self.cycle.message_event.set()
        self.transport.write(head.encode("ascii") + body.encode())
        self.transport.close()
        self._disarm()


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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = environment_settings()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=GuardedProtocol,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=10,
        access_log=False,  # the app writes its own structured access log (logger app.access)
    )


if __name__ == "__main__":
    main()
