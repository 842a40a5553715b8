"""The layout's promises: the decode side of app.pictures is NumPy and Pillow only; problem types live in one place."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import app
from app.guard import problems

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


def test_every_problem_type_is_defined_in_app_guard_problems_and_listed_in_the_api_docs() -> None:
    """One place for the problem types (the ones the server writes before the app included), each in docs/api.md."""
    defined_there = {id(value) for value in vars(problems).values() if isinstance(value, problems.ProblemType)}
    elsewhere = []
    for module_info in pkgutil.walk_packages(app.__path__, "app."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, problems.ProblemType) and id(value) not in defined_there:
                elsewhere.append(f"{module_info.name}.{name}")
    assert not elsewhere, f"problem types defined outside app.guard.problems: {elsewhere}"
    table = (ROOT / "docs" / "api.md").read_text()
    listed = set(re.findall(r"^\| \d{3} \| `([a-z-]+)` \|", table, flags=re.MULTILINE))
    slugs = {value.slug for value in vars(problems).values() if isinstance(value, problems.ProblemType)}
    assert slugs - listed == set(), "problem types missing from docs/api.md's table"
