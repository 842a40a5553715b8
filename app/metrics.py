"""Prometheus metrics, in a registry per app (tests build several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from starlette.requests import Request

__all__ = ["Metrics"]

# A `_created` timestamp series next to every counter and histogram doubles the output and serves no query.
disable_created_metrics()

_LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "endpoint", "status")
        self.requests = Counter(
            "gcnn_http_requests", "HTTP requests by route template and status.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "gcnn_http_request_duration_seconds",
            "Time from request to response, by route and status.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "gcnn_inference_duration_seconds",
            "One model's forward pass on one batch.",
            ("model",),
            buckets=_INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.model_images = Counter(
            "gcnn_model_images", "Images run through each model.", ("model",), registry=self.registry
        )
        self.images = Counter(
            "gcnn_images_processed",
            "Uploaded images decoded and processed, by endpoint.",
            ("endpoint",),
            registry=self.registry,
        )
        self.ready = Gauge("gcnn_ready", "1 when the models are loaded and self-tested.", registry=self.registry)
        self.rejected = Counter(
            "gcnn_rejected_requests",
            "Upload requests refused with 503 by admission control, by the bound they hit.",
            ("reason",),
            registry=self.registry,
        )
        self.inflight_requests = Gauge(
            "gcnn_inflight_requests", "Upload requests in flight (admitted, not yet answered).", registry=self.registry
        )
        self.inflight_bytes = Gauge(
            "gcnn_inflight_bytes", "Declared body bytes of the upload requests in flight.", registry=self.registry
        )
        self.decode_overruns = Counter(
            "gcnn_decode_overruns",
            "Decode processes killed: over the time budget, abandoned by their client, or crashed.",
            registry=self.registry,
        )

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(method, endpoint, str(status)).observe(seconds)

    def count_images(self, request: Request, images: int = 1) -> None:
        """Uploaded images processed by the route that served ``request`` (its path template, never the raw path)."""
        route = request.scope.get("route")
        self.images.labels(getattr(route, "path", "unmatched")).inc(images)

    def observe_inference(self, model: str, images: int, seconds: float) -> None:
        self.inference.labels(model).observe(seconds)
        self.model_images.labels(model).inc(images)

    def render(self) -> bytes:
        return generate_latest(self.registry)
