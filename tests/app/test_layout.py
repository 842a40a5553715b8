"""The layout's promises: the decode side of app.pictures is NumPy and Pillow only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_decode_process_imports_neither_torch_nor_fastapi() -> None:
    """What ``python -m app.pictures.sandbox`` imports (its module and every decode function's) stays small."""
    probe = (
        "import json, sys; import app.pictures.sandbox, app.pictures.decoding; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = set(json.loads(result.stdout))
    assert {"numpy", "PIL", "app"} <= imported
    assert imported.isdisjoint({"torch", "fastapi", "starlette", "pydantic", "model"})
