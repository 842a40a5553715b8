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

from app.middleware import content_security_policy

__all__ = ["ASSETS_DIR", "ASSETS_URL", "for_swagger_ui", "router"]

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))


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
    And it offers a file chooser only for ``format: binary`` (OpenAPI 3.0 style):
    FastAPI's 3.1 ``contentMediaType`` alone gives an array of files as text
    boxes. Every file part also gets ``minLength: 1``: the service refuses an
    empty file (422), so the document says so.
    """
    for operation in _operations(openapi):
        for parameter in operation.get("parameters", []):
            if not parameter.get("required") and "examples" in parameter:
                _examples_into_description(parameter)
    schemas = openapi.get("components", {}).get("schemas", {})
    for operation in _operations(openapi):
        form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
        body = schemas.get(form.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1], {})
        for field in body.get("properties", {}).values():
            part = field.get("items", field)
            if "contentMediaType" in part:
                part.update(format="binary", minLength=1)
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
