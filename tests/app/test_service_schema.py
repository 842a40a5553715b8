"""Schemathesis, an API tester nobody here wrote, against the real service: every check it has, 0 failures.

The service runs as ``make serve`` runs it (``python -m app.guard.server``, the shipped weights) on a free loopback
port; ``st run`` generates requests from the service's own /openapi.json (examples, coverage and fuzzing
phases, positive and negative data) and checks each answer: no 5xx, statuses, content types, bodies and
headers as documented, schema-valid requests accepted, schema-invalid ones refused, and the rest of its
list. The run is bounded by a number of examples per operation and a fixed seed (the same requests each
time); it must finish within the test's timeout, and nothing is skipped silently: a run that does not end
with 0 failures fails the test with schemathesis' own report.

What the document cannot say, and the one check this excludes for it: see ``CONFIG``.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import png_of, upload
from tests.service_process import ROOT, running_service

pytestmark = pytest.mark.timeout(600)

logger = logging.getLogger(__name__)

ARTIFACTS = ROOT / "artifacts"
MAX_EXAMPLES = 60  # per operation and phase
SEED = 20
RUN_TIMEOUT_S = 480.0

# schemathesis.toml. Every check schemathesis has is on unless this turns it off (and `st run --checks all`
# would override the per-operation setting below, so the command names no checks).
CONFIG = """
# A file or a batch over GCNN_MAX_UPLOAD_BYTES or GCNN_MAX_BATCH (maxLength and maxItems in the document) is
# refused with 413 Content Too Large (RFC 9110), which schemathesis does not count as a refusal by default.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# positive_data_acceptance (a schema-valid request must get 2xx) is off for the four upload operations only,
# because OpenAPI cannot say which of their schema-valid requests the service can answer:
# - the file must be a picture that decodes (PNG, JPEG, GIF, BMP, WebP, TIFF within GCNN_MAX_PIXELS) and has
#   a digit on it: the document can say "bytes, 1 to GCNN_MAX_UPLOAD_BYTES of them", not "a decodable picture
#   with ink" (schemathesis' own samples include a PDF, a ZIP and a blank 1x1 PNG; each is answered 415/422);
# - /classify, /classify/batch, /rotate: `angle` excludes `group` and `element`, `element` needs `group`, and
#   its range (0..order-1) depends on `group`; OpenAPI 3.1 has no way to relate query parameters;
# - /orbit: `group`'s order must be at most GCNN_MAX_ORBIT.
# Every other check runs on them, and this one runs on every other operation.
[[operations]]
include-path-regex = "^/(classify|classify/batch|rotate|orbit)$"
checks.positive_data_acceptance.enabled = false
"""


def test_schemathesis_finds_no_failure_against_the_real_service(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with running_service(ARTIFACTS / "schemathesis_service.log") as (base, _):
        command = [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tmp_path)
    report = run.stdout + run.stderr
    (ARTIFACTS / "schemathesis.txt").write_text(report)
    summary = report[report.rfind("SUMMARY") :]
    logger.info("schemathesis: %s", summary)
    assert run.returncode == 0, report[-8000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert "Tested: 9" in summary and counted is not None and counted[1] == counted[2], summary


def test_document_says_which_files_the_service_takes(tight_client: TestClient) -> None:
    """1 to GCNN_MAX_UPLOAD_BYTES bytes a file, 1 to GCNN_MAX_BATCH files a batch, each declared as an image
    type or as bytes: in the document, as the settings say (here 64 KiB and 3), and refused beyond (an empty
    file 422, a part declared as text 415, a fourth file 413)."""
    document = tight_client.get("/openapi.json").json()
    bodies = document["components"]["schemas"]
    single = bodies["Body_classify_classify_post"]["properties"]["file"]
    batch = bodies["Body_classify_batch_classify_batch_post"]["properties"]["files"]
    for part in (single, batch["items"]):
        assert part["format"] == "binary" and (part["minLength"], part["maxLength"]) == (1, 64 * 1024), part
    assert (batch["minItems"], batch["maxItems"]) == (1, 3), batch
    for path, field in (("/classify", "file"), ("/classify/batch", "files")):
        declared = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["encoding"]
        assert {"image/png", "image/jpeg", "application/octet-stream"} <= set(
            declared[field]["contentType"].split(", ")
        )
    assert tight_client.post("/classify", files=upload(b"")).status_code == 422
    assert tight_client.post("/classify", files=upload(png_of(7), content_type="text/plain")).status_code == 415
    four = [("files", ("digit.png", png_of(7), "image/png"))] * 4
    assert tight_client.post("/classify/batch", files=four).status_code == 413
