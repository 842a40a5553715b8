"""The OpenAPI problem examples quote the service's own setting defaults, never a copy of them."""

from __future__ import annotations

import json

from app.guard.problems import problem_responses
from app.settings import Settings


def example_details(status: int) -> list[str]:
    content = problem_responses(status)[status]["content"]["application/problem+json"]
    return [example["value"]["detail"] for example in content["examples"].values()]


def test_limit_examples_quote_the_setting_defaults() -> None:
    defaults = Settings.model_fields
    text = json.dumps(example_details(413) + example_details(422) + example_details(503))
    assert f"the limit is {defaults['max_upload_bytes'].default} bytes" in text
    assert f"the limit is {defaults['max_pixels'].default} pixels" in text
    assert f'the limit is {defaults["max_batch"].default}"' in text
    assert f"the budget of {defaults['decode_budget_s'].default:g} s" in text
    assert f"limit of {defaults['max_inflight_requests'].default} upload requests" in text
