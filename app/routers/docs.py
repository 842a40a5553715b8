"""GET /docs: Swagger UI served by the service itself.

FastAPI's default page loads Swagger UI from a CDN, which fails offline and in
closed networks. The assets come from the ``fastapi-swagger`` package (a
Swagger UI 5 build, which renders OpenAPI 3.1) and are mounted at /docs-assets.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
    )
