"""Schemathesis: requests generated from the app's own OpenAPI schema find no server error and no
response that contradicts the schema (status codes, content types, bodies, headers)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app

# Schemathesis starts the app's lifespan itself (models loaded) and keeps it for the session.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SECONDS_PER_OPERATION = 30.0


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, time_budget: dict[str, float]) -> None:
    started = time_budget.setdefault(case.operation.label, time.monotonic())
    if time.monotonic() - started > SECONDS_PER_OPERATION:
        pytest.skip(f"time budget of {SECONDS_PER_OPERATION}s spent for {case.operation.label}")
    case.call_and_validate(checks=CHECKS)


@pytest.fixture(scope="module")
def time_budget() -> dict[str, float]:
    return {}
