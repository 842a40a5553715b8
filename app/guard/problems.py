"""One error format for every 4xx and 5xx: RFC 9457 ``application/problem+json``.

A problem has ``type`` (a URI naming the kind of problem), ``title`` (fixed per
type), ``status``, ``detail`` (what happened this time, in words a user can act
on), ``instance`` (the request path), plus two extensions: ``request_id`` (also
the ``X-Request-ID`` header) and, for invalid parameters, ``errors``.

Domain errors (:mod:`app.errors`) map to a status and type here, so the code that
detects a problem never deals with HTTP. Plain HTTP errors (404, 405, a malformed
multipart body) get ``type: about:blank`` and the status phrase as title.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from app import errors
from app.settings import Settings

__all__ = [
    "HEADERS_TOO_LARGE",
    "OVERLOADED",
    "PROBLEM_MEDIA_TYPE",
    "REQUEST_TIMEOUT",
    "RETRY_AFTER_S",
    "SHUTTING_DOWN",
    "Problem",
    "ProblemException",
    "add_problem_schemas",
    "install_problem_handlers",
    "internal_error_response",
    "problem_for",
    "problem_response",
    "problem_responses",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# tag: URIs (RFC 4151) name problem types without pretending to be web pages.
TYPE_PREFIX = "tag:equivariant-digits,2026:problem:"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug


EMPTY_FILE = ProblemType("empty-file", 422, "Empty file")
NOT_AN_IMAGE = ProblemType("not-an-image", 422, "Not a supported image")
CORRUPT_IMAGE = ProblemType("corrupt-image", 422, "Image cannot be decoded")
DECODE_BUDGET = ProblemType("decode-budget", 422, "Image too costly to decode")
NO_INK = ProblemType("no-ink", 422, "No digit found")
INVALID_TRANSFORM = ProblemType("invalid-transform", 422, "Invalid transformation")
INVALID_FORM = ProblemType("invalid-form", 422, "Invalid form")
UNKNOWN_GROUP = ProblemType("unknown-group", 404, "Unknown group")
VALIDATION = ProblemType("validation-error", 422, "Invalid request parameters")
INVALID_INPUT = ProblemType("invalid-input", 422, "Invalid input")  # an input error without a type of its own
UNSUPPORTED_MEDIA_TYPE = ProblemType("unsupported-media-type", 415, "Unsupported media type")
UPLOAD_TOO_LARGE = ProblemType("upload-too-large", 413, "Upload too large")
IMAGE_TOO_LARGE = ProblemType("image-too-large", 413, "Image has too many pixels")
TOO_MANY_FILES = ProblemType("too-many-files", 413, "Too many files")
MODELS_UNAVAILABLE = ProblemType("models-unavailable", 503, "Models unavailable")
OVERLOADED = ProblemType("overloaded", 503, "Service overloaded")
RETRY_AFTER_S = 1  # what a 503 overloaded answer asks the client to wait
INTERNAL = ProblemType("internal-error", 500, "Internal server error")
# Written by app.guard.server's protocol before a request reaches the app:
BAD_REQUEST = ProblemType("bad-request", 400, "Malformed HTTP request")
HEADERS_TOO_LARGE = ProblemType("headers-too-large", 431, "Request Header Fields Too Large")
REQUEST_TIMEOUT = ProblemType("request-timeout", 408, "Request Timeout")
SHUTTING_DOWN = ProblemType("shutting-down", 503, "Shutting down")  # a request read while the server drains

_DOMAIN_PROBLEMS: dict[type[Exception], ProblemType] = {
    errors.EmptyUploadError: EMPTY_FILE,
    errors.NotAnImageError: NOT_AN_IMAGE,
    errors.CorruptImageError: CORRUPT_IMAGE,
    errors.DecodeBudgetError: DECODE_BUDGET,
    errors.NoInkError: NO_INK,
    errors.InvalidTransformError: INVALID_TRANSFORM,
    errors.InvalidFormError: INVALID_FORM,
    errors.UnsupportedMediaTypeError: UNSUPPORTED_MEDIA_TYPE,
    errors.UploadTooLargeError: UPLOAD_TOO_LARGE,
    errors.ImageTooLargeError: IMAGE_TOO_LARGE,
    errors.TooManyFilesError: TOO_MANY_FILES,
    errors.ModelsUnavailableError: MODELS_UNAVAILABLE,
    errors.ServiceOverloadedError: OVERLOADED,
}
PROBLEM_TYPES = (*_DOMAIN_PROBLEMS.values(), VALIDATION, UNKNOWN_GROUP, INVALID_INPUT, INTERNAL)


class ProblemItem(BaseModel):
    """One invalid parameter."""

    loc: list[str | int] = Field(description="Where: e.g. ['query', 'angle'] or ['body', 'file'].")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": NO_INK.uri,
                    "title": NO_INK.title,
                    "status": 422,
                    "detail": "no digit found: the image has no contrast (it is blank, uniform or a single pixel); "
                    "send a digit written on a plain background",
                    "instance": "/classify",
                    "request_id": "5f0c6a4e9b2d4f7e8a1c3b5d7e9f1a2b",
                }
            ]
        }
    )

    type: str = Field("about:blank", description="URI of the problem type (a tag: URI, or about:blank).")
    title: str = Field(description="Short summary of the problem type; the same for every occurrence.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str | None = Field(None, description="What went wrong this time, and how to fix it.")
    instance: str | None = Field(None, description="The request path.")
    request_id: str | None = Field(None, description="Also sent as the X-Request-ID header; quote it in reports.")
    errors: list[ProblemItem] | None = Field(None, description="Each invalid parameter (validation errors only).")


class ProblemException(HTTPException):
    """An HTTP error of a known problem type, for code outside routes (middleware) that must stop a request."""

    def __init__(self, problem: ProblemType, detail: str) -> None:
        super().__init__(status_code=problem.status, detail=detail)
        self.problem = problem


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str | None,
    type_uri: str = "about:blank",
    errors: list[ProblemItem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The ``application/problem+json`` response; ``request`` supplies path and request id."""
    request_id = getattr(request.state, "request_id", None)
    body = Problem(
        type=type_uri,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id,
        errors=errors,
    ).model_dump(exclude_none=True)
    all_headers = dict(headers or {})
    if request_id:
        all_headers["X-Request-ID"] = request_id
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=PROBLEM_MEDIA_TYPE)


def _typed(request: Request, problem: ProblemType, detail: str, **kwargs: Any) -> JSONResponse:
    return problem_response(
        request, status=problem.status, title=problem.title, detail=detail, type_uri=problem.uri, **kwargs
    )


def problem_for(exc: Exception) -> ProblemType:
    """The problem type of a domain error: its class's (or an ancestor's); a new input error that nobody
    mapped yet is still a 422, never a 500."""
    return next((p for cls, p in _DOMAIN_PROBLEMS.items() if isinstance(exc, cls)), INVALID_INPUT)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    problem = problem_for(exc)
    retry_after = {MODELS_UNAVAILABLE: 5, OVERLOADED: RETRY_AFTER_S}.get(problem)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if problem.status >= 500:
        logger.warning("%s: %s", problem.title, exc)
    return _typed(request, problem, str(exc), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        ProblemItem(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "")),
        )
        for error in exc.errors()
    ]
    # the offending input is never echoed: it may be a megabyte of binary
    detail = "; ".join(f"{'.'.join(str(part) for part in item.loc)}: {item.msg}" for item in items)
    return _typed(request, VALIDATION, detail or "the request is invalid", errors=items)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ProblemException):
        return _typed(request, exc.problem, str(exc.detail), headers=exc.headers)
    phrase = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(request, status=exc.status_code, title=phrase, detail=detail, headers=exc.headers)


def internal_error_response(request: Request) -> JSONResponse:
    """The 500 problem for an unexpected error (a bug), naming the request id to quote.

    Sent by :class:`app.guard.middleware.RequestContextMiddleware`, which also logs the
    traceback once, with the request id; no exception handler is registered for
    ``Exception``, since Starlette runs those outside every middleware (the log
    line would lose its request id) and re-raises to the server (a second log).
    """
    request_id = getattr(request.state, "request_id", None)
    return _typed(request, INTERNAL, f"an unexpected error occurred; quote request id {request_id} when reporting it")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the app can raise to a problem response."""
    for exc_class in (errors.InputError, errors.ModelsUnavailableError, errors.ServiceOverloadedError):
        app.add_exception_handler(exc_class, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # anything else: app.guard.middleware.RequestContextMiddleware (see internal_error_response)


def _default(field: str) -> Any:
    """A setting's default, so that the examples below never repeat a number by hand."""
    return Settings.model_fields[field].default


_EXAMPLES: dict[int, list[tuple[ProblemType, str]]] = {
    400: [],
    413: [
        (
            UPLOAD_TOO_LARGE,
            f"the file is {_default('max_upload_bytes') + 1048576} bytes; "
            f"the limit is {_default('max_upload_bytes')} bytes",
        ),
        (
            IMAGE_TOO_LARGE,
            f"the image is 10000x10000 = 100000000 pixels; the limit is {_default('max_pixels')} pixels",
        ),
        (TOO_MANY_FILES, f"{_default('max_batch') + 1} files in one batch; the limit is {_default('max_batch')}"),
    ],
    415: [(UNSUPPORTED_MEDIA_TYPE, "send the image as multipart/form-data, not application/json")],
    422: [
        (NOT_AN_IMAGE, "the file is not a supported image; send one of PNG, JPEG, GIF, BMP, WEBP, TIFF"),
        (CORRUPT_IMAGE, "the image data cannot be decoded (truncated or damaged?): image file is truncated"),
        (EMPTY_FILE, "the uploaded file is empty (0 bytes)"),
        (
            DECODE_BUDGET,
            f"decoding this image took longer than the budget of {_default('decode_budget_s'):g} s; "
            "send a smaller or simpler file",
        ),
        (NO_INK, "no digit found: the image has no contrast (it is blank, uniform or a single pixel)"),
        (INVALID_TRANSFORM, "element 9 is out of range for C8: use 0..7"),
        (INVALID_FORM, "the form has 2 'file' parts; send exactly one (or use /classify/batch)"),
        (VALIDATION, "query.angle: Input should be a finite number"),
    ],
    404: [(UNKNOWN_GROUP, "unknown group 'Q4': expected 'C<N>' or 'D<N>', e.g. 'C4', 'D8'")],
    503: [
        (MODELS_UNAVAILABLE, "the models are not loaded: SHA-256 mismatch for weights/cnn_seed.safetensors"),
        (
            OVERLOADED,
            f"the service is at its limit of {_default('max_inflight_requests')} upload requests in flight; "
            "retry in a second",
        ),
    ],
    500: [(INTERNAL, "an unexpected error occurred; quote request id 5f0c6a4e9b2d4f7e when reporting it")],
}
_DESCRIPTIONS = {
    400: "Malformed request (e.g. a broken multipart encoding, or HTTP the server cannot parse).",
    404: "Not found (for /groups: no such group).",
    413: "Over a configured limit: file bytes, image pixels or files per batch.",
    415: "The request is not multipart/form-data, or a file declares a non-image content type.",
    422: "The upload is not a usable image, or a parameter is invalid.",
    500: "Unexpected error (a bug); the server keeps serving.",
    503: "The models are not loaded yet or failed to load (see /readyz), or the service is at its limit of "
    "requests in flight (Retry-After says when to try again).",
}


def add_problem_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put :class:`Problem` (referenced by :func:`problem_responses`) into the schema's components, and
    document FastAPI's automatic 422 responses as the problems they are."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    generated = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(generated.pop("$defs", {}))
    schemas["Problem"] = generated
    for item in openapi.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                responses["422"] = problem_responses(422)[422]
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's default 422 body, replaced by Problem
        schemas.pop(unused, None)
    return openapi


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting these error statuses, with examples."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        examples = {
            problem.slug: {"summary": problem.title, "value": _example(problem, detail)}
            for problem, detail in _EXAMPLES.get(status, [])
        }
        content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
        if examples:
            content["examples"] = examples
        documented[status] = {
            "description": _DESCRIPTIONS.get(status, _phrase(status)),
            "content": {PROBLEM_MEDIA_TYPE: content},
        }
    return documented


def _example(problem: ProblemType, detail: str) -> dict[str, Any]:
    return {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": "/classify",
        "request_id": "5f0c6a4e9b2d4f7e8a1c3b5d7e9f1a2b",
    }
