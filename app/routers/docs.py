"""GET /docs: Swagger UI served by the service itself, and the OpenAPI document made to work in it.

FastAPI's default page loads Swagger UI from a CDN, which fails offline and in
closed networks. The assets come from the ``fastapi-swagger`` package (a
Swagger UI 5 build, which renders OpenAPI 3.1) and are mounted at /docs-assets.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from app.guard.middleware import content_security_policy
from app.pictures.imaging import SUPPORTED_MEDIA_TYPES
from app.settings import Settings

__all__ = ["ASSETS_DIR", "ASSETS_URL", "PART_MEDIA_TYPES", "describe_uploads", "for_swagger_ui", "router"]

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))


# what app.pictures.uploads accepts as a part's declared type; PNG first, the type clients that pick one should use
PART_MEDIA_TYPES = ", ".join(["image/png", *sorted(SUPPORTED_MEDIA_TYPES - {"image/png"}), "application/octet-stream"])
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI's page; its one inline script (the start-up call) is allowed by its hash, nothing else inline."""
    root = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
    )
    digests = [
        base64.b64encode(hashlib.sha256(script).digest()).decode() for script in _INLINE_SCRIPT.findall(page.body)
    ]
    page.headers["Content-Security-Policy"] = content_security_policy(*digests)
    return page


def for_swagger_ui(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make "Try it out" with only a picture chosen a request the service answers with 200.

    Swagger UI fills every parameter from its first example, so the examples of
    optional parameters that exclude each other (``angle`` and ``group`` with
    ``element``) made a request that is always refused: an optional parameter's
    examples move into its description, and the form starts from the defaults.
    """
    for operation in _operations(openapi):
        for parameter in operation.get("parameters", []):
            if not parameter.get("required") and "examples" in parameter:
                _examples_into_description(parameter)
    return openapi


def describe_uploads(openapi: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Say in the document which files the service takes: 1 to GCNN_MAX_UPLOAD_BYTES bytes each, 1 to
    GCNN_MAX_BATCH of them in a list, each part declared as a supported image type or as plain bytes.

    Each file part also gets ``format: binary`` (OpenAPI 3.0 style) beside FastAPI's 3.1
    ``contentMediaType``: Swagger UI offers a file chooser for the items of an array
    only then (with ``contentMediaType`` alone, an array of files is text boxes).
    """
    schemas = openapi.get("components", {}).get("schemas", {})
    for operation in _operations(openapi):
        form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
        body = schemas.get(form.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1], {})
        for name, field in body.get("properties", {}).items():
            part = field.get("items", field)
            if "contentMediaType" not in part:
                continue
            part.update(format="binary", minLength=1, maxLength=settings.max_upload_bytes)
            form.setdefault("encoding", {})[name] = {"contentType": PART_MEDIA_TYPES}
            if part is not field:
                field.update(minItems=1, maxItems=settings.max_batch)
    return openapi


def _operations(openapi: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in openapi.get("paths", {}).values():
        yield from item.values()


def _examples_into_description(parameter: dict[str, Any]) -> None:
    """``examples`` of a parameter with no default become text: ``Example: `3` (135 degrees in C8).``."""
    examples = parameter.pop("examples")
    if "default" in parameter.get("schema", {}):
        return  # Swagger UI shows the default, and an enum's choices, by itself
    named = [
        f"`{example['value']}`" + (f" ({name})" if name != str(example["value"]) else "")
        for name, example in examples.items()
    ]
    parameter["description"] = f"{parameter.get('description', '')} Example: {', '.join(named)}.".strip()
