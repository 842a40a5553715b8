"""ASGI middleware: request ids, access logs and metrics; the request body limit.

Both are plain ASGI (no ``BaseHTTPMiddleware``): they add a few microseconds,
not a task and a stream copy, to every request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import get_origin

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.guard.admission import Admission
from app.guard.problems import (
    OVERLOADED,
    RETRY_AFTER_S,
    UPLOAD_TOO_LARGE,
    ProblemException,
    internal_error_response,
    problem_response,
)
from app.logs import request_id_var
from app.metrics import Metrics
from app.settings import Settings

__all__ = [
    "SECURITY_HEADERS",
    "AdmissionMiddleware",
    "BodyLimitMiddleware",
    "RequestContextMiddleware",
    "body_limit",
    "content_security_policy",
    "takes_many_files",
]

access_logger = logging.getLogger("app.access")
logger = logging.getLogger(__name__)

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away first", in logs and metrics only
MULTIPART_OVERHEAD = 16 * 1024  # bytes per file part for boundaries and part headers


def content_security_policy(*script_hashes: str) -> str:
    """The Content-Security-Policy of every response: everything from the service itself, nothing inline.

    Scripts run only from the service's own URLs, plus an inline script whose
    base64 SHA-256 is in ``script_hashes`` (Swagger UI's start-up script). Images
    may also be ``data:`` (the 28x28 inputs in answers, Swagger UI's icons) and
    ``blob:`` (Swagger UI shows a /rotate answer as one). No page may frame this
    one (clickjacking), and nothing may be loaded from anywhere else.
    """
    scripts = " ".join(["'self'", *(f"'sha256-{digest}'" for digest in script_hashes)])
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


# OWASP Secure Headers Project's list, as fits a service that serves its own pages and JSON. Not set here:
# Strict-Transport-Security (the TLS terminator in front sets it; over plain HTTP browsers ignore it) and
# Cross-Origin-Embedder-Policy (it would only restrict what the pages embed, and they embed nothing foreign).
SECURITY_HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",  # no browser guesses a type from bytes
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Permitted-Cross-Domain-Policies": "none",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


class RequestContextMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` if sane), log it, time it, count it;
    turn an unexpected error into a 500 problem, logged once with that id; give every response the
    :data:`SECURITY_HEADERS` (a route may set its own, e.g. a policy that allows its inline script)."""

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
        status, responded = 500, False  # what the client gets if the app raises before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # nobody to answer; its work was stopped (app.guard.disconnect)
            status = CLIENT_CLOSED_REQUEST
        except Exception:
            # logged once, here, while the request id is set; the client gets a 500 problem naming it
            logger.exception("unhandled error on %s %s", scope["method"], path)
            if responded:  # too late for a problem response: let the server drop the connection
                raise
            await internal_error_response(Request(scope))(scope, receive, send_with_id)
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


def body_limit(settings: Settings, scope: Scope) -> int:
    """The most bytes a request body may have: the files its route takes, plus multipart overhead."""
    many = scope["path"].rstrip("/") in getattr(scope["app"].state, "multi_file_paths", ())
    return (settings.max_batch if many else 1) * (settings.max_upload_bytes + MULTIPART_OVERHEAD)


def takes_many_files(route: BaseRoute) -> bool:
    """Whether the route's body (its own parameters or its dependencies') has a list of files."""
    stack = [getattr(route, "dependant", None)]
    while stack:
        dependant = stack.pop()
        if dependant is None:
            continue
        if any(get_origin(field.field_info.annotation) is list for field in dependant.body_params):
            return True
        stack.extend(dependant.dependencies)
    return False


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
        limit = body_limit(settings, scope)
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


class AdmissionMiddleware:
    """Admit an upload request (``POST``) only while :class:`app.guard.admission.Admission` has room;
    otherwise 503 with ``Retry-After``, before its body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = getattr(scope.get("app"), "state", None)
        admission: Admission | None = getattr(state, "admission", None)
        if scope["type"] != "http" or scope["method"] != "POST" or admission is None or state is None:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        size = int(declared) if declared.isdigit() else body_limit(state.settings, scope)
        metrics: Metrics = state.metrics
        refused = admission.enter(size)
        if refused is not None:
            metrics.rejected.labels(refused).inc()
            detail = (
                f"the service is at its limit of {admission.max_requests} upload requests in flight"
                if refused == "requests"
                else f"the uploads in flight already hold {admission.bytes} of {admission.max_bytes} bytes"
            )
            response = problem_response(
                Request(scope),
                status=OVERLOADED.status,
                title=OVERLOADED.title,
                detail=f"{detail}; retry in a second",
                type_uri=OVERLOADED.uri,
                # no Connection: close: the server reads the unread body and drops it, so the client,
                # still sending, gets to read this answer (a close now would reset the connection)
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        metrics.inflight_requests.set(admission.requests)
        metrics.inflight_bytes.set(admission.bytes)
        try:
            await self.app(scope, receive, send)
        finally:
            admission.leave(size)
            metrics.inflight_requests.set(admission.requests)
            metrics.inflight_bytes.set(admission.bytes)
