"""The ASGI app: ``uvicorn app.main:app``.

The lifespan loads the configured checkpoints once (SHA-256 verified, then a
self-test inference) on the torch worker thread. If that fails the service
still starts, so that /healthz and /readyz can say why; every endpoint that
needs the models answers 503 until a restart with good weights.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from app.answering.inference import InferenceEngine, TorchWorker, configure_torch, load_models, self_test
from app.guard.admission import Admission
from app.guard.middleware import AdmissionMiddleware, BodyLimitMiddleware, RequestContextMiddleware, takes_many_files
from app.guard.problems import add_problem_schemas, install_problem_handlers
from app.logs import configure_logging
from app.metrics import Metrics
from app.pictures.sandbox import DecodePool
from app.routers import catalog, classify, docs, health, orbit, rotate, site
from app.settings import Settings, environment_settings, get_settings
from model.checkpoint import CheckpointError

__all__ = ["app", "create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Classify handwritten digits with a plain CNN and a rotation-equivariant G-CNN side by side, and see what
rotating the digit does to each. Upload any common image format: it is normalised like MNIST (dark ink on
light paper is inverted, cropped, scaled to 20x20 and centred by mass in 28x28).

Every error is `application/problem+json` (RFC 9457). Every response carries an `X-Request-ID` header.
"""

TAGS = [
    {"name": "classify", "description": "What each model says about a digit."},
    {"name": "equivariance", "description": "A digit under every element of a symmetry group."},
    {"name": "rotate", "description": "The uploaded picture, transformed."},
    {"name": "catalog", "description": "The loaded models and the symmetry groups."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]


async def _settings_for(app: FastAPI) -> Settings:
    """The settings the routes will see: tests override the get_settings dependency (sync or async)."""
    settings = app.dependency_overrides.get(get_settings, get_settings)()
    return await settings if inspect.isawaitable(settings) else settings  # type: ignore[no-any-return]


def _start_engine(settings: Settings, worker: TorchWorker, metrics: Metrics) -> InferenceEngine:
    """Runs on the torch worker thread: thread counts, checkpoints, self-test."""
    configure_torch(settings.resolved_torch_threads())
    models = load_models(settings.weights_dir, settings.models)
    self_test(models)
    return InferenceEngine(models, worker, on_inference=metrics.observe_inference)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = await _settings_for(app)
    configure_logging(settings.log_level)
    worker = TorchWorker()
    app.state.settings, app.state.torch_worker, app.state.engine, app.state.load_error = settings, worker, None, None
    app.state.admission = Admission(settings.max_inflight_requests, settings.max_inflight_bytes)
    decoder = DecodePool(
        settings.resolved_decode_processes(),
        settings.decode_budget_s,
        settings.decode_memory_bytes,
        on_overrun=app.state.metrics.decode_overruns.inc,
    )
    decoder.start()
    app.state.decoder = decoder
    try:
        app.state.engine = await worker.run(_start_engine, settings, worker, app.state.metrics)
        app.state.metrics.ready.set(1)
        logger.info("ready: %s, %d torch threads", ", ".join(settings.models), settings.resolved_torch_threads())
    except (CheckpointError, OSError, RuntimeError, ValueError) as error:
        # keep serving /healthz and /readyz (503 with this reason) rather than crash-looping
        app.state.load_error = str(error).replace(str(settings.weights_dir), "$GCNN_WEIGHTS_DIR")
        logger.error("models not loaded: %s", error)
    try:
        yield
    finally:
        app.state.engine = None
        app.state.metrics.ready.set(0)
        worker.close()
        decoder.close()


class _OptionalStaticFiles(StaticFiles):
    """Static files whose folder may not exist yet: 404, not 500."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        if self.directory is None or not site.STATIC_DIR.is_dir():
            raise HTTPException(404, detail="the demo page's files are not installed (app/static is missing)")
        return await super().get_response(path, scope)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Rotation-robust digit classification",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served by app.routers.docs without a CDN
        redoc_url=None,
    )
    app.state.metrics = Metrics()
    install_problem_handlers(app)
    app.add_middleware(AdmissionMiddleware)  # before any body byte is read; after the size check
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)  # outermost: ids, logs and metrics cover every response
    routers = (classify, orbit, rotate, catalog, health, site, docs)
    for module in routers:
        app.include_router(module.router)
    # the body limit of a route follows from its parameters: a list of files may be GCNN_MAX_BATCH files
    app.state.multi_file_paths = frozenset(
        route.path for module in routers for route in module.router.routes if takes_many_files(route)
    )
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    app.mount("/static", _OptionalStaticFiles(directory=site.STATIC_DIR, check_dir=False), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            settings = getattr(app.state, "settings", None) or environment_settings()  # the lifespan's, once it ran
            app.openapi_schema = docs.describe_uploads(docs.for_swagger_ui(add_problem_schemas(schema)), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
