"""OWASP secure headers on every response: a Content-Security-Policy that runs scripts only from the service
(an inline script only by its hash), no framing, no referrer, no sniffing; and HEAD on the pages.

The browser side (the demo page and Swagger UI still work under the policy, an injected script is refused, a
framing page gets nothing) is in tests/app/test_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import png_of, upload

GETS = ["/", "/docs", "/openapi.json", "/healthz", "/readyz", "/models", "/metrics", "/static/app.js", "/no/such/path"]
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _directives(policy: str) -> dict[str, list[str]]:
    """``"a x y; b z"`` as ``{"a": ["x", "y"], "b": ["z"]}``."""
    parsed = (part.split() for part in policy.split(";") if part.strip())
    return {name: sources for name, *sources in parsed}


def _assert_secure_headers(response: object, where: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    policy = _directives(headers.get("content-security-policy", ""))
    assert policy.get("default-src") == ["'none'"], f"{where}: {policy}"
    assert policy.get("frame-ancestors") == ["'none'"], f"{where}: {policy}"
    assert policy.get("base-uri") == ["'none'"], f"{where}: {policy}"
    assert policy.get("object-src") == ["'none'"], f"{where}: {policy}"
    scripts = policy.get("script-src", [])
    assert scripts[:1] == ["'self'"] and all(source.startswith("'sha256-") for source in scripts[1:]), scripts
    for directive, sources in policy.items():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"} & set(sources), (directive, sources)
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("cross-origin-opener-policy") == "same-origin", where
    assert headers.get("cross-origin-resource-policy") == "same-origin", where
    assert headers.get("x-permitted-cross-domain-policies") == "none", where
    assert "camera=()" in headers.get("permissions-policy", ""), where


@pytest.mark.parametrize("path", GETS)
def test_every_get_carries_the_secure_headers(client: TestClient, path: str) -> None:
    _assert_secure_headers(client.get(path), path)


def test_uploads_and_their_errors_carry_the_secure_headers(client: TestClient) -> None:
    answered = client.post("/classify", files=upload(png_of(7)))
    refused = client.post("/classify", content=b"{}", headers={"content-type": "application/json"})
    assert (answered.status_code, refused.status_code) == (200, 415)
    _assert_secure_headers(answered, "POST /classify 200")
    _assert_secure_headers(refused, "POST /classify 415")


def test_swagger_ui_inline_script_runs_only_by_its_hash(client: TestClient) -> None:
    """/docs starts Swagger UI with one inline script: the policy names exactly that script's SHA-256."""
    response = client.get("/docs")
    inline = INLINE_SCRIPT.findall(response.text)
    assert len(inline) == 1 and "SwaggerUIBundle" in inline[0]
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    scripts = _directives(response.headers["content-security-policy"])["script-src"]
    assert scripts == ["'self'", f"'sha256-{digest}'"]


def test_demo_page_needs_no_inline_script_or_style(client: TestClient) -> None:
    """The demo page runs under the strict policy as it is: no inline script, handler or style attribute."""
    page = client.get("/").text
    assert INLINE_SCRIPT.findall(page) == []
    assert re.search(r"\son[a-z]+\s*=|\sstyle\s*=|<style", page) is None
    assert _directives(client.get("/").headers["content-security-policy"])["script-src"] == ["'self'"]


@pytest.mark.parametrize("path", ["/", "/docs", "/healthz", "/static/app.js"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200, (path, head.status_code)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""
    _assert_secure_headers(head, f"HEAD {path}")
