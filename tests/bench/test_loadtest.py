"""The load-test script's pieces and one tiny bounded run (no timing assertions)."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bench import loadtest
from bench.loadtest import Result, Scenario, check_loopback, digit_png, photo_png, wrk_script


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:9/", "http://127.3.2.1", "http://[::1]:80"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert not check_loopback(url).endswith("/")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://192.168.1.2", "http://0.0.0.0"])
def test_other_addresses_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="this machine only"):
        check_loopback(url)


def test_uploads_are_the_promised_pngs() -> None:
    digit, photo = Image.open(io.BytesIO(digit_png())), Image.open(io.BytesIO(photo_png()))
    assert (digit.format, digit.size, digit.mode) == ("PNG", (28, 28), "L")
    assert (photo.format, photo.size, photo.mode) == ("PNG", (300, 300), "RGB")
    assert len(photo_png()) > 100_000  # noisy like a photo, not a flat drawing


def test_wrk_script_carries_the_exact_multipart_body() -> None:
    script = wrk_script(photo_png(), max_requests=7)
    assert script.isascii() and "responses >= 7" in script
    literal = re.search(r'wrk.body = "(.*)"', script).group(1)  # type: ignore[union-attr]
    body = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), literal).encode("latin-1")
    assert body.startswith(b"--") and b'name="file"' in body and photo_png() in body


def test_wrk_percentiles_take_precedence() -> None:
    result = Result(Scenario("28x28", 8, 1.0, 10), requests=10, wall_seconds=1.0, percentiles_ms={50: 5.0})
    assert result.percentile(50) == 5.0 and result.capped


def test_percentiles_and_rate() -> None:
    result = Result(Scenario("28x28", 1, 1.0, 10), requests=4, wall_seconds=2.0, latencies=[0.004, 0.001, 0.003, 0.002])
    assert result.rate == 2.0
    assert result.percentile(50) == pytest.approx(3.0) and result.percentile(100) == pytest.approx(4.0)


def test_arguments_are_bounded() -> None:
    for bad in (["--seconds", "0"], ["--seconds", "601"], ["--concurrency", "0"], ["--max-requests", "0"]):
        with pytest.raises(SystemExit):
            loadtest.parse_args(bad)
    assert loadtest.scenarios(loadtest.parse_args(["--concurrency", "1", "8", "--soak-seconds", "5"]))[-1] == Scenario(
        "28x28", 8, 5.0, 1_000_000
    )


@pytest.mark.slow
@pytest.mark.parametrize("client", ["httpx", "wrk"])
def test_a_tiny_run_starts_measures_and_stops_the_service(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "load.json"
    loadtest.main(
        ["--seconds", "1", "--max-requests", "20", "--soak-seconds", "0", "--concurrency", "1", "2",
         "--uploads", "28x28", "--client", client, "--json", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "targets:" in printed and "req/s" in printed
    rows = json.loads(out.read_text())
    assert [row["scenario"]["concurrency"] for row in rows] == [1, 2]
    assert all(row["requests"] > 0 and row["errors"] == 0 and row["rss_peak"] > 0 for row in rows)
