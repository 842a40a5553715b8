"""GET /: the demo page (``app/static/index.html``; its assets are mounted at /static).

The page also shows the shipped models' accuracy-against-angle plot, which lives
with the weights (``weights/accuracy_vs_angle.png``, made by the evaluation).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from app.dependencies import SettingsDep

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404, detail="the demo page is not installed (app/static/index.html is missing)")
    return FileResponse(page, media_type="text/html")


@router.api_route("/evaluation/accuracy_vs_angle.png", methods=["GET", "HEAD"])
async def accuracy_plot(settings: SettingsDep) -> FileResponse:
    plot = settings.weights_dir / "accuracy_vs_angle.png"
    if not plot.is_file():
        raise HTTPException(404, detail="no evaluation plot next to the weights (accuracy_vs_angle.png)")
    return FileResponse(plot, media_type="image/png")
