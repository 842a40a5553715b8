"""ASGI middleware: request ids, access logs and metrics; the request body limit.

Both are plain ASGI (no ``BaseHTTPMiddleware``): they add a few microseconds,
not a task and a stream copy, to every request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var
from app.metrics import Metrics
from app.problems import UPLOAD_TOO_LARGE, ProblemException, problem_response
from app.settings import Settings

__all__ = ["BodyLimitMiddleware", "RequestContextMiddleware", "body_limit"]

access_logger = logging.getLogger("app.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MULTIPART_OVERHEAD = 16 * 1024  # bytes per file part for boundaries and part headers
BATCH_PATH = "/classify/batch"


class RequestContextMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` if sane), log it, time it, count it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root_path = scope["path"], scope.get("root_path", "")  # routing may rewrite them (mounts)
        client_id = Headers(scope=scope).get("x-request-id", "")
        request_id = client_id if _CLIENT_REQUEST_ID.match(client_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            endpoint = _endpoint(scope, path, root_path)
            self._record(scope["app"], scope["method"], path, endpoint, status, time.perf_counter() - started)
            request_id_var.reset(token)

    @staticmethod
    def _record(app: Starlette, method: str, path: str, endpoint: str, status: int, seconds: float) -> None:
        metrics: Metrics | None = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.observe_request(method, endpoint, status, seconds)
        access_logger.info(
            "%s %s %d",
            method,
            path,
            status,
            extra={
                "method": method,
                "path": path,
                "endpoint": endpoint,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


def _endpoint(scope: Scope, path: str, root_path: str) -> str:
    """The route template that served the request (``/groups/{name}``, ``/static``), or ``unmatched``.

    Never the raw path: random URLs must not create new metric label values.
    FastAPI records its own routes in the scope; the docs, the OpenAPI schema and
    mounts are found by matching the request as it arrived.
    """
    route = scope.get("route")
    if route is None:
        arrived = {"type": "http", "path": path, "root_path": root_path, "method": scope["method"]}
        route = next((r for r in scope["app"].routes if r.matches(arrived)[0] is Match.FULL), None)
    return getattr(route, "path", None) or "unmatched"


def body_limit(settings: Settings, path: str) -> int:
    """The most bytes a request body to ``path`` may have: its files plus multipart overhead."""
    files = settings.max_batch if path.rstrip("/").endswith(BATCH_PATH) else 1
    return files * (settings.max_upload_bytes + MULTIPART_OVERHEAD)


class BodyLimitMiddleware:
    """Stop reading a request body once it passes :func:`body_limit` (413).

    A declared ``Content-Length`` over the limit is refused before any byte is
    read; a chunked or lying body is cut off as it streams in, so an oversized
    upload never lands in memory or on disk whole.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        settings: Settings | None = getattr(app.state, "settings", None) if app is not None else None
        if scope["type"] != "http" or settings is None:
            await self.app(scope, receive, send)
            return
        limit = body_limit(settings, scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = problem_response(
                Request(scope),
                status=UPLOAD_TOO_LARGE.status,
                title=UPLOAD_TOO_LARGE.title,
                detail=_too_large(limit, settings),
                type_uri=UPLOAD_TOO_LARGE.uri,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # an HTTPException passes through FastAPI's body parsing untouched
                    raise ProblemException(UPLOAD_TOO_LARGE, _too_large(limit, settings))
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int, settings: Settings) -> str:
    return f"the request body is larger than {limit} bytes; each file may be at most {settings.max_upload_bytes} bytes"
