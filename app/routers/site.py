"""GET /: the demo page (``app/static/index.html``; its assets are mounted at /static)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@router.get("/")
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404, detail="the demo page is not installed (app/static/index.html is missing)")
    return FileResponse(page, media_type="text/html")
