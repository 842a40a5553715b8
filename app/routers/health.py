"""GET /healthz, /readyz and /metrics: for orchestrators and Prometheus."""

from __future__ import annotations

import torch
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.dependencies import EngineDep, MetricsDep
from app.problems import problem_responses
from app.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", responses=problem_responses(500))
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/readyz",
    summary="Readiness: models loaded, checksums verified, self-test passed",
    description="200 once every configured model is loaded, its SHA-256 verified and a self-test inference "
    "passed; 503 (with the reason) before that or when loading failed.",
    responses=problem_responses(500, 503),
)
async def readyz(engine: EngineDep) -> ReadyResponse:
    return ReadyResponse(models=[model.name for model in engine.models], torch_threads=torch.get_num_threads())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {
                CONTENT_TYPE_LATEST: {
                    "example": "# TYPE gcnn_http_requests_total counter\n"
                    'gcnn_http_requests_total{endpoint="/classify",method="POST",status="200"} 42.0\n'
                }
            },
        }
    },
)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
