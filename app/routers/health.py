"""GET /healthz, /readyz and /metrics: for orchestrators and Prometheus."""

from __future__ import annotations

import torch
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.dependencies import AdmissionDep, EngineDep, MetricsDep
from app.errors import ServiceOverloadedError
from app.guard.problems import problem_responses
from app.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", responses=problem_responses(500))
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/readyz",
    summary="Readiness: models loaded, checksums verified, self-test passed",
    description="200 once every configured model is loaded, its SHA-256 verified and a self-test inference "
    "passed; 503 (with the reason) before that, when loading failed, or while the service is saturated "
    "(as many upload requests or bytes in flight as admission control allows).",
    responses=problem_responses(500, 503),
)
async def readyz(engine: EngineDep, admission: AdmissionDep) -> ReadyResponse:
    if admission.saturated:
        raise ServiceOverloadedError(
            f"saturated: {admission.requests} of {admission.max_requests} upload requests and "
            f"{admission.bytes} of {admission.max_bytes} bytes in flight"
        )
    return ReadyResponse(
        models=[model.name for model in engine.models],
        torch_threads=torch.get_num_threads(),
        inflight_requests=admission.requests,
        max_inflight_requests=admission.max_requests,
        inflight_bytes=admission.bytes,
        max_inflight_bytes=admission.max_bytes,
    )


# HEAD answers like GET without the body (load balancers probe with it); not listed again in the schema
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)


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
